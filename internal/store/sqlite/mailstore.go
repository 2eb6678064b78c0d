package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/postern/postern/internal/store"
)

// mailboxSelect reads mailboxes as b; Subscribed comes from the subscriptions table (migration 3).
const mailboxSelect = `SELECT b.id, b.user_id, b.name, b.uidvalidity, b.uidnext, b.highestmodseq, b.special_use,
	EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = b.user_id AND s.name = b.name), b.first_recent_uid
	FROM mailboxes b`

// statusSelect reads mailboxes as b with their counters; append WHERE and then statusGroup.
const statusSelect = `SELECT b.id, b.user_id, b.name, b.uidvalidity, b.uidnext, b.highestmodseq, b.special_use,
	EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = b.user_id AND s.name = b.name), b.first_recent_uid,
	COUNT(m.id),
	COALESCE(SUM(CASE WHEN (' ' || m.flags || ' ') LIKE '% \Seen %' THEN 0 ELSE 1 END) FILTER (WHERE m.id IS NOT NULL), 0),
	COALESCE(SUM(m.size), 0),
	COUNT(m.id) FILTER (WHERE m.uid >= b.first_recent_uid)
	FROM mailboxes b LEFT JOIN messages m ON m.mailbox_id = b.id`

const statusGroup = ` GROUP BY b.id`

func scanMailbox(row interface{ Scan(...any) error }, extra ...any) (store.Mailbox, error) {
	var m store.Mailbox
	err := row.Scan(append([]any{&m.ID, &m.UserID, &m.Name, &m.UIDValidity, &m.UIDNext, &m.HighestModSeq, &m.SpecialUse, &m.Subscribed, &m.FirstRecentUID}, extra...)...)
	return m, err
}

func scanStatus(row interface{ Scan(...any) error }) (store.MailboxStatus, error) {
	var st store.MailboxStatus
	var err error
	st.Mailbox, err = scanMailbox(row, &st.Messages, &st.Unseen, &st.Size, &st.Recent)
	return st, err
}

// ListMailboxes returns each mailbox of the user with its counters, INBOX first, then by name.
func (s *Store) ListMailboxes(ctx context.Context, userID int64) ([]store.MailboxStatus, error) {
	rows, err := s.rdb.QueryContext(ctx, statusSelect+` WHERE b.user_id = ?`+statusGroup+` ORDER BY b.name <> 'INBOX', b.name`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.MailboxStatus
	for rows.Next() {
		st, err := scanStatus(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// mailboxName maps "" to INBOX and spells INBOX in upper case: its name is case-insensitive (RFC 9051 5.1), every
// other mailbox name is case-sensitive.
func mailboxName(name string) string {
	if name == "" || strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return name
}

// GetMailbox finds one mailbox of a user by name.
func (s *Store) GetMailbox(ctx context.Context, userID int64, name string) (store.Mailbox, error) {
	name = mailboxName(name)
	m, err := scanMailbox(s.rdb.QueryRowContext(ctx, mailboxSelect+` WHERE b.user_id = ? AND b.name = ?`, userID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("mailbox %s: %w", name, store.ErrNotFound)
	}
	return m, err
}

// ListMessages lists the messages of a mailbox by UID.
func (s *Store) ListMessages(ctx context.Context, mailboxID int64) ([]store.Message, error) {
	return s.Messages(ctx, store.MessageQuery{MailboxID: mailboxID})
}

// UsageBytes is the total size of the user's messages (what the quota counts). Triggers on messages keep the
// counter exact (migration 2), so it needs no scan of the user's messages.
func (s *Store) UsageBytes(ctx context.Context, userID int64) (int64, error) {
	var n int64
	err := s.rdb.QueryRowContext(ctx, `SELECT used_bytes FROM users WHERE id = ?`, userID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("user #%d: %w", userID, store.ErrNotFound)
	}
	return n, err
}

// GCBlobs deletes blob files that no message and no queue entry references and that are older than olderThan
// (a crash between writing a blob and committing its rows leaves such orphans, so does removing a user; the age
// keeps deliveries in flight safe), with their cached structure in blob_meta. The blob_meta rows go first, in a
// transaction that checks again that nothing references the blob; the file goes after that commit.
func (s *Store) GCBlobs(ctx context.Context, olderThan time.Duration) (int, error) {
	ids, err := s.blobs.List(ctx, time.Now().Add(-olderThan))
	if err != nil {
		return 0, err
	}
	const chunk = 500 // blobs per transaction: one commit for many orphans, yet short write locks
	n := 0
	for len(ids) > 0 {
		part := ids[:min(chunk, len(ids))]
		ids = ids[len(part):]
		var orphans []string
		err := s.do(ctx, "collect blobs", func(ctx context.Context, w *wtx) error {
			orphans = orphans[:0]
			for _, id := range part {
				var orphan bool
				if err := w.QueryRowContext(ctx, `SELECT NOT EXISTS (SELECT 1 FROM messages WHERE blob_id = ?)
					AND NOT EXISTS (SELECT 1 FROM queue WHERE blob_id = ?)`, id, id).Scan(&orphan); err != nil {
					return err
				}
				if !orphan {
					continue
				}
				if _, err := w.ExecContext(ctx, `DELETE FROM blob_meta WHERE blob_id = ?`, id); err != nil {
					return err
				}
				orphans = append(orphans, id)
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("collect blobs: %w", err)
		}
		for _, id := range orphans {
			if err := s.blobs.Delete(ctx, id); err == nil {
				n++
			}
		}
	}
	return n, nil
}
