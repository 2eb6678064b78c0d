package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/postern/postern/internal/store"
)

// querier is what reads need: the reader pool or a write transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// checkMailboxName rejects names that cannot be a mailbox: empty, or with an empty level ("a//b", "/a", "a/").
func checkMailboxName(name string) error {
	for _, part := range strings.Split(name, "/") {
		if part == "" {
			return fmt.Errorf("mailbox name %q: empty hierarchy level", name)
		}
	}
	for _, r := range name {
		if r < ' ' || r == 0x7f {
			return fmt.Errorf("mailbox name %q: control character", name)
		}
	}
	return nil
}

// nextUIDValidity hands out max(now, last+1) from counters, so no two mailboxes of this database (a deleted one
// and its successor of the same name above all) ever share a UIDVALIDITY (RFC 9051 2.3.1.1).
func nextUIDValidity(ctx context.Context, tx *sql.Tx) (uint32, error) {
	var v int64
	err := tx.QueryRowContext(ctx, `INSERT INTO counters (name, value) VALUES ('uidvalidity', ?)
		ON CONFLICT (name) DO UPDATE SET value = MAX(value + 1, excluded.value) RETURNING value`, time.Now().Unix()).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("uidvalidity: %w", err)
	}
	if v <= 0 || v > math.MaxUint32 {
		return 0, fmt.Errorf("uidvalidity counter out of range: %d", v)
	}
	return uint32(v), nil
}

// mailboxByName reads one mailbox of a user inside q.
func mailboxByName(ctx context.Context, q querier, userID int64, name string) (store.Mailbox, error) {
	m, err := scanMailbox(q.QueryRowContext(ctx, mailboxSelect+` WHERE b.user_id = ? AND b.name = ?`, userID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("mailbox %s: %w", name, store.ErrNotFound)
	}
	return m, err
}

// mailboxByID reads one mailbox inside q.
func mailboxByID(ctx context.Context, q querier, id int64) (store.Mailbox, error) {
	m, err := scanMailbox(q.QueryRowContext(ctx, mailboxSelect+` WHERE b.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("mailbox #%d: %w", id, store.ErrNotFound)
	}
	return m, err
}

// CreateMailbox creates one mailbox with a fresh UIDVALIDITY. Parents are not created.
func (s *Store) CreateMailbox(ctx context.Context, userID int64, name, specialUse string) (store.Mailbox, error) {
	name = mailboxName(name)
	if err := checkMailboxName(name); err != nil {
		return store.Mailbox{}, err
	}
	var mb store.Mailbox
	err := s.do(ctx, "create mailbox", func(ctx context.Context, w *wtx) error {
		if _, err := mailboxByName(ctx, w, userID, name); err == nil {
			return fmt.Errorf("mailbox %s: %w", name, store.ErrExists)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var n int
		if err := w.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE id = ?`, userID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("user #%d: %w", userID, store.ErrNotFound)
		}
		validity, err := nextUIDValidity(ctx, w.Tx)
		if err != nil {
			return err
		}
		var id int64
		if err := w.QueryRowContext(ctx, `INSERT INTO mailboxes (user_id, name, uidvalidity, special_use, subscribed)
			VALUES (?, ?, ?, ?, 0) RETURNING id`, userID, name, validity, specialUse).Scan(&id); err != nil {
			return fmt.Errorf("create mailbox %s: %w", name, err)
		}
		w.touch(id)
		mb, err = mailboxByID(ctx, w, id)
		return err
	})
	return mb, err
}

// DeleteMailbox removes a mailbox with its messages and tombstones; its children and its subscription stay
// (RFC 9051 6.3.5, 6.3.7: a server must not unsubscribe a name on its own). INBOX cannot be deleted.
func (s *Store) DeleteMailbox(ctx context.Context, userID int64, name string) error {
	name = mailboxName(name)
	if name == "INBOX" {
		return fmt.Errorf("mailbox INBOX cannot be deleted") // RFC 9051 6.3.5
	}
	return s.do(ctx, "delete mailbox", func(ctx context.Context, w *wtx) error {
		mb, err := mailboxByName(ctx, w, userID, name)
		if err != nil {
			return err
		}
		// Messages first, while the mailbox row still names the user: the usage trigger needs it.
		if _, err := w.ExecContext(ctx, `DELETE FROM messages WHERE mailbox_id = ?`, mb.ID); err != nil {
			return fmt.Errorf("delete mailbox %s: %w", name, err)
		}
		if _, err := w.ExecContext(ctx, `DELETE FROM mailboxes WHERE id = ?`, mb.ID); err != nil {
			return fmt.Errorf("delete mailbox %s: %w", name, err)
		}
		w.touch(mb.ID)
		return nil
	})
}

// RenameMailbox renames a mailbox and every mailbox below it, keeping their UIDVALIDITY, and moves their
// subscriptions along: the user asked for the move, and a subscription left on the old name would only show up as
// a \NonExistent folder. Renaming INBOX is special (RFC 9051 6.3.6): see renameInbox.
func (s *Store) RenameMailbox(ctx context.Context, userID int64, oldName, newName string) error {
	oldName, newName = mailboxName(oldName), mailboxName(newName)
	if err := checkMailboxName(newName); err != nil {
		return err
	}
	return s.do(ctx, "rename mailbox", func(ctx context.Context, w *wtx) error {
		src, err := mailboxByName(ctx, w, userID, oldName)
		if err != nil {
			return err
		}
		if _, err := mailboxByName(ctx, w, userID, newName); err == nil {
			return fmt.Errorf("mailbox %s: %w", newName, store.ErrExists)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if oldName == "INBOX" {
			return renameInbox(ctx, w, src, newName)
		}
		if strings.HasPrefix(newName, oldName+"/") {
			return fmt.Errorf("rename mailbox %s to %s: a mailbox cannot move below itself", oldName, newName)
		}
		return renameTree(ctx, w, userID, oldName, newName)
	})
}

// renameTree renames oldName and its children; newName does not exist.
func renameTree(ctx context.Context, w *wtx, userID int64, oldName, newName string) error {
	rows, err := w.QueryContext(ctx, `SELECT id, name FROM mailboxes WHERE user_id = ? AND (name = ? OR substr(name, 1, ?) = ?)`,
		userID, oldName, len(oldName)+1, oldName+"/")
	if err != nil {
		return err
	}
	type move struct {
		id       int64
		from, to string
	}
	var moves []move
	for rows.Next() {
		var m move
		if err := rows.Scan(&m.id, &m.from); err != nil {
			rows.Close()
			return err
		}
		m.to = newName + m.from[len(oldName):]
		moves = append(moves, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// Every target must be free. None can be another source: sources exist, and newName is not below oldName.
	for _, m := range moves {
		var n int
		if err := w.QueryRowContext(ctx, `SELECT COUNT(*) FROM mailboxes WHERE user_id = ? AND name = ?`, userID, m.to).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("rename %s to %s: mailbox %s: %w", oldName, newName, m.to, store.ErrExists)
		}
	}
	for _, m := range moves {
		if _, err := w.ExecContext(ctx, `UPDATE mailboxes SET name = ? WHERE id = ?`, m.to, m.id); err != nil {
			return fmt.Errorf("rename %s to %s: %w", m.from, m.to, err)
		}
		if _, err := w.ExecContext(ctx, `UPDATE OR REPLACE subscriptions SET name = ? WHERE user_id = ? AND name = ?`, m.to, userID, m.from); err != nil {
			return fmt.Errorf("rename subscription %s: %w", m.from, err)
		}
		w.touch(m.id)
	}
	return nil
}

// renameInbox moves every message of INBOX into a new mailbox newName (fresh UIDVALIDITY; the messages keep their
// UIDs, flags and modseqs) and leaves INBOX empty with its UIDVALIDITY and UIDNEXT, so no UID is reused. Children
// of INBOX stay where they are (RFC 9051 6.3.6). INBOX records tombstones for the moved UIDs.
func renameInbox(ctx context.Context, w *wtx, inbox store.Mailbox, newName string) error {
	validity, err := nextUIDValidity(ctx, w.Tx)
	if err != nil {
		return err
	}
	var id int64
	if err := w.QueryRowContext(ctx, `INSERT INTO mailboxes (user_id, name, uidvalidity, uidnext, highestmodseq, subscribed)
		VALUES (?, ?, ?, ?, ?, 0) RETURNING id`, inbox.UserID, newName, validity, inbox.UIDNext, inbox.HighestModSeq).Scan(&id); err != nil {
		return fmt.Errorf("rename INBOX to %s: %w", newName, err)
	}
	res, err := w.ExecContext(ctx, `UPDATE messages SET mailbox_id = ? WHERE mailbox_id = ?`, id, inbox.ID)
	if err != nil {
		return fmt.Errorf("rename INBOX: move messages: %w", err)
	}
	w.touch(inbox.ID, id)
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	modseq := inbox.HighestModSeq + 1
	if _, err := w.ExecContext(ctx, `UPDATE mailboxes SET highestmodseq = ? WHERE id = ?`, modseq, inbox.ID); err != nil {
		return err
	}
	if _, err := w.ExecContext(ctx, `INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) SELECT ?, uid, ? FROM messages WHERE mailbox_id = ?`,
		inbox.ID, modseq, id); err != nil {
		return fmt.Errorf("rename INBOX: tombstones: %w", err)
	}
	return nil
}

// GetMailboxByID finds a mailbox by ID.
func (s *Store) GetMailboxByID(ctx context.Context, id int64) (store.Mailbox, error) {
	return mailboxByID(ctx, s.rdb, id)
}

// MailboxStatus returns one mailbox with its counters.
func (s *Store) MailboxStatus(ctx context.Context, mailboxID int64) (store.MailboxStatus, error) {
	st, err := scanStatus(s.rdb.QueryRowContext(ctx, statusSelect+` WHERE b.id = ?`+statusGroup, mailboxID))
	if errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("mailbox #%d: %w", mailboxID, store.ErrNotFound)
	}
	return st, err
}

// Subscribe adds name to the user's subscriptions, whether or not such a mailbox exists (RFC 9051 6.3.7).
func (s *Store) Subscribe(ctx context.Context, userID int64, name string) error {
	name = mailboxName(name)
	return s.do(ctx, "subscribe", func(ctx context.Context, w *wtx) error {
		_, err := w.ExecContext(ctx, `INSERT INTO subscriptions (user_id, name) VALUES (?, ?) ON CONFLICT DO NOTHING`, userID, name)
		if err != nil && strings.Contains(err.Error(), "FOREIGN KEY") {
			return fmt.Errorf("user #%d: %w", userID, store.ErrNotFound)
		}
		return err
	})
}

// Unsubscribe removes name from the user's subscriptions; ErrNotFound when it was not subscribed, so the IMAP
// layer can choose its answer (RFC 9051 6.3.8).
func (s *Store) Unsubscribe(ctx context.Context, userID int64, name string) error {
	name = mailboxName(name)
	return s.do(ctx, "unsubscribe", func(ctx context.Context, w *wtx) error {
		res, err := w.ExecContext(ctx, `DELETE FROM subscriptions WHERE user_id = ? AND name = ?`, userID, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("subscription %s: %w", name, store.ErrNotFound)
		}
		return nil
	})
}

// ListSubscriptions lists the user's subscribed names, sorted.
func (s *Store) ListSubscriptions(ctx context.Context, userID int64) ([]string, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT name FROM subscriptions WHERE user_id = ? ORDER BY name`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
