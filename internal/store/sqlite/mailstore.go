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

const mailboxCols = `id, user_id, name, uidvalidity, uidnext, highestmodseq, special_use, subscribed`

func scanMailbox(row interface{ Scan(...any) error }, extra ...any) (store.Mailbox, error) {
	var m store.Mailbox
	err := row.Scan(append([]any{&m.ID, &m.UserID, &m.Name, &m.UIDValidity, &m.UIDNext, &m.HighestModSeq, &m.SpecialUse, &m.Subscribed}, extra...)...)
	return m, err
}

// ListMailboxes returns each mailbox of the user with its counters, INBOX first, then by name.
func (s *Store) ListMailboxes(ctx context.Context, userID int64) ([]store.MailboxStatus, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT b.id, b.user_id, b.name, b.uidvalidity, b.uidnext, b.highestmodseq, b.special_use, b.subscribed,
		COUNT(m.id),
		COALESCE(SUM(CASE WHEN (' ' || m.flags || ' ') LIKE '% \Seen %' THEN 0 ELSE 1 END) FILTER (WHERE m.id IS NOT NULL), 0),
		COALESCE(SUM(m.size), 0)
		FROM mailboxes b LEFT JOIN messages m ON m.mailbox_id = b.id
		WHERE b.user_id = ? GROUP BY b.id ORDER BY b.name <> 'INBOX', b.name`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.MailboxStatus
	for rows.Next() {
		var st store.MailboxStatus
		var err error
		st.Mailbox, err = scanMailbox(rows, &st.Messages, &st.Unseen, &st.Size)
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
	m, err := scanMailbox(s.rdb.QueryRowContext(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE user_id = ? AND name = ?`, userID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("mailbox %s: %w", name, store.ErrNotFound)
	}
	return m, err
}

// ListMessages lists the messages of a mailbox by UID.
func (s *Store) ListMessages(ctx context.Context, mailboxID int64) ([]store.Message, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, mailbox_id, uid, blob_id, size, internal_date, flags, modseq
		FROM messages WHERE mailbox_id = ? ORDER BY uid`, mailboxID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Message
	for rows.Next() {
		var m store.Message
		var ts int64
		var flags string
		if err := rows.Scan(&m.ID, &m.MailboxID, &m.UID, &m.BlobID, &m.Size, &ts, &flags, &m.ModSeq); err != nil {
			return nil, err
		}
		m.InternalDate = time.Unix(ts, 0)
		m.Flags = strings.Fields(flags)
		out = append(out, m)
	}
	return out, rows.Err()
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
// (a crash between writing a blob and committing its rows leaves such orphans; the age keeps deliveries in
// flight safe).
func (s *Store) GCBlobs(ctx context.Context, olderThan time.Duration) (int, error) {
	ids, err := s.blobs.List(ctx, time.Now().Add(-olderThan))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		var refs int
		if err := s.rdb.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM messages WHERE blob_id = ?) + (SELECT COUNT(*) FROM queue WHERE blob_id = ?)`, id, id).Scan(&refs); err != nil {
			return n, err
		}
		if refs == 0 {
			if err := s.blobs.Delete(ctx, id); err == nil {
				n++
			}
		}
	}
	return n, nil
}
