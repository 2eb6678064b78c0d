package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/postern/postern/internal/store"
)

// This file is `postern check --store`: read-only consistency checks of the database against itself and against
// the blob files. Every check reads; nothing here writes except GCBlobs (mailstore.go), which --repair calls.
// The server may be running meanwhile: a delivery in flight has a blob file that is not referenced yet, which is
// why orphans are reported with their age and only old ones are ever removed.

// CheckIntegrity runs SQLite's own check (PRAGMA integrity_check, or the faster quick_check when quick is set) and
// foreign_key_check, then the store's invariants: every message and queue entry has its blob file with the
// recorded size, each mailbox's UIDNEXT is above every UID it handed out and HIGHESTMODSEQ at or above every
// modseq, each user's used_bytes (what the quota counts) is the sum of their message sizes, every queue entry has
// a recipient still to deliver. It calls problem once per inconsistency found and returns how many objects of
// each kind it examined.
func (s *Store) CheckIntegrity(ctx context.Context, quick bool, problem func(check, detail string)) (map[string]int64, error) {
	counts := map[string]int64{}
	steps := []func(context.Context, bool, map[string]int64, func(string, string)) error{
		s.checkSQLite, s.checkMessageBlobs, s.checkQueue, s.checkMailboxes, s.checkUsage, s.checkMeta,
	}
	for _, step := range steps {
		if err := step(ctx, quick, counts, problem); err != nil {
			return counts, err
		}
	}
	return counts, nil
}

// checkSQLite runs the database's own structural checks; each line other than "ok" is a problem.
func (s *Store) checkSQLite(ctx context.Context, quick bool, _ map[string]int64, problem func(string, string)) error {
	pragma := "integrity_check"
	if quick {
		pragma = "quick_check"
	}
	lines, err := s.queryStrings(ctx, `PRAGMA `+pragma)
	if err != nil {
		return fmt.Errorf("%s: %w", pragma, err)
	}
	for _, l := range lines {
		if l != "ok" {
			problem(pragma, l)
		}
	}
	rows, err := s.rdb.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return fmt.Errorf("foreign_key_check: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, parent string
		var rowid, fk any
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			return fmt.Errorf("foreign_key_check: %w", err)
		}
		problem("foreign_key", fmt.Sprintf("%s row %v refers to a missing %s row", table, rowid, parent))
	}
	return rows.Err()
}

func (s *Store) queryStrings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// blobSize returns the size of a blob file; ok is false when there is none.
func (s *Store) blobSize(ctx context.Context, id string) (size int64, ok bool, err error) {
	info, err := s.blobInfo(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return info.Size(), true, nil
}

func (s *Store) blobInfo(ctx context.Context, id string) (os.FileInfo, error) {
	rc, err := s.blobs.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	f, ok := rc.(interface{ Stat() (os.FileInfo, error) })
	if !ok {
		return nil, fmt.Errorf("blob %s: cannot stat a %T", id, rc)
	}
	return f.Stat()
}

// checkMessageBlobs checks that the blob of every message copy exists with the size the copies record. A row
// read here may be expunged and its blob collected before the file is looked at (the server is running), so a
// missing blob is reported only when the reference is still there afterwards.
func (s *Store) checkMessageBlobs(ctx context.Context, _ bool, counts map[string]int64, problem func(string, string)) error {
	rows, err := s.rdb.QueryContext(ctx, `SELECT blob_id, size, COUNT(*) FROM messages GROUP BY blob_id, size ORDER BY blob_id`)
	if err != nil {
		return fmt.Errorf("message blobs: %w", err)
	}
	type ref struct {
		id     string
		size   int64
		copies int64
	}
	var refs []ref
	for rows.Next() {
		var r ref
		if err := rows.Scan(&r.id, &r.size, &r.copies); err != nil {
			rows.Close()
			return fmt.Errorf("message blobs: %w", err)
		}
		refs = append(refs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("message blobs: %w", err)
	}
	for _, r := range refs {
		counts["messages"] += r.copies
		counts["message blobs"]++
		size, ok, err := s.blobSize(ctx, r.id)
		if err != nil {
			return err
		}
		switch {
		case !ok:
			if still, err := s.stillReferenced(ctx, r.id); err != nil {
				return err
			} else if still {
				problem("blob", fmt.Sprintf("%d message copies refer to blob %s, which does not exist", r.copies, r.id))
			}
		case size != r.size:
			problem("blob", fmt.Sprintf("%d message copies record %d bytes for blob %s, the file has %d", r.copies, r.size, r.id, size))
		}
	}
	return nil
}

func (s *Store) stillReferenced(ctx context.Context, id string) (bool, error) {
	var ok bool
	err := s.rdb.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM messages WHERE blob_id = ?)
		OR EXISTS (SELECT 1 FROM queue WHERE blob_id = ?)`, id, id).Scan(&ok)
	return ok, err
}

// checkQueue checks every outbound queue entry: its blob exists with the recorded size, its recipients decode
// and at least one is still Outstanding (SettleQueued removes an entry when none is).
func (s *Store) checkQueue(ctx context.Context, _ bool, counts map[string]int64, problem func(string, string)) error {
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, blob_id, size, recipients FROM queue ORDER BY id`)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	type entry struct {
		id, blob, rcpts string
		size            int64
	}
	var entries []entry
	for rows.Next() {
		var e entry
		if err := rows.Scan(&e.id, &e.blob, &e.size, &e.rcpts); err != nil {
			rows.Close()
			return fmt.Errorf("queue: %w", err)
		}
		entries = append(entries, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	for _, e := range entries {
		counts["queue entries"]++
		var rcpts []store.OutboundRecipient
		if err := json.Unmarshal([]byte(e.rcpts), &rcpts); err != nil {
			problem("queue", fmt.Sprintf("entry %s: recipients do not decode: %v", e.id, err))
		} else if !slices.ContainsFunc(rcpts, store.OutboundRecipient.Outstanding) {
			problem("queue", fmt.Sprintf("entry %s has no recipient left to deliver", e.id))
		}
		size, ok, err := s.blobSize(ctx, e.blob)
		if err != nil {
			return err
		}
		switch {
		case !ok:
			if still, err := s.stillReferenced(ctx, e.blob); err != nil {
				return err
			} else if still {
				problem("blob", fmt.Sprintf("queue entry %s refers to blob %s, which does not exist", e.id, e.blob))
			}
		case size != e.size:
			problem("blob", fmt.Sprintf("queue entry %s records %d bytes for blob %s, the file has %d", e.id, e.size, e.blob, size))
		}
	}
	return nil
}

// mailboxInvariants are the per-mailbox rules, each a query returning (user address, mailbox name, detail) for
// every mailbox that breaks it. The aggregates run in one snapshot per query; a writer commits UIDNEXT and its
// message in one transaction, so a running server cannot make them disagree.
var mailboxInvariants = []struct{ name, query string }{
	// RFC 9051 2.3.1.1: UIDNEXT is greater than every UID assigned in the mailbox, also the expunged ones.
	{"uidnext", `SELECT u.address, b.name, 'UIDNEXT ' || b.uidnext || ' is not above UID ' || x.uid
		FROM mailboxes b JOIN users u ON u.id = b.user_id
		JOIN (SELECT mailbox_id, MAX(uid) AS uid FROM (SELECT mailbox_id, uid FROM messages
			UNION ALL SELECT mailbox_id, uid FROM expunged) GROUP BY mailbox_id) x ON x.mailbox_id = b.id
		WHERE x.uid >= b.uidnext`},
	// RFC 7162 3.1.1: HIGHESTMODSEQ is the highest mod-sequence of any message (or expunge) in the mailbox.
	{"highestmodseq", `SELECT u.address, b.name, 'HIGHESTMODSEQ ' || b.highestmodseq || ' is below modseq ' || x.modseq
		FROM mailboxes b JOIN users u ON u.id = b.user_id
		JOIN (SELECT mailbox_id, MAX(modseq) AS modseq FROM (SELECT mailbox_id, modseq FROM messages
			UNION ALL SELECT mailbox_id, modseq FROM expunged) GROUP BY mailbox_id) x ON x.mailbox_id = b.id
		WHERE x.modseq > b.highestmodseq`},
	{"recent", `SELECT u.address, b.name, 'first recent UID ' || b.first_recent_uid || ' is above UIDNEXT ' || b.uidnext
		FROM mailboxes b JOIN users u ON u.id = b.user_id WHERE b.first_recent_uid > b.uidnext`},
	{"uidvalidity", `SELECT u.address, b.name, 'UIDVALIDITY ' || b.uidvalidity || ' is not a positive 32-bit number'
		FROM mailboxes b JOIN users u ON u.id = b.user_id WHERE b.uidvalidity < 1 OR b.uidvalidity > 4294967295`},
	// The counter hands out UIDVALIDITY values; one below a value in use could hand it out again.
	{"uidvalidity", `SELECT u.address, b.name, 'UIDVALIDITY ' || b.uidvalidity || ' is above the counter ' || c.value
		FROM mailboxes b JOIN users u ON u.id = b.user_id JOIN counters c ON c.name = 'uidvalidity'
		WHERE b.uidvalidity > c.value`},
	{"message", `SELECT u.address, b.name, 'message row ' || m.id || ' has UID ' || m.uid || ' and size ' || m.size
		FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id JOIN users u ON u.id = b.user_id
		WHERE m.uid < 1 OR m.uid > 4294967295 OR m.size < 0`},
}

// checkMailboxes checks UIDNEXT, HIGHESTMODSEQ, the \Recent mark and UIDVALIDITY of every mailbox against its rows.
func (s *Store) checkMailboxes(ctx context.Context, _ bool, counts map[string]int64, problem func(string, string)) error {
	var n int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM mailboxes`).Scan(&n); err != nil {
		return fmt.Errorf("mailboxes: %w", err)
	}
	counts["mailboxes"] = n
	for _, inv := range mailboxInvariants {
		if err := s.eachRow(ctx, inv.query, func(user, mailbox, detail string) {
			problem(inv.name, fmt.Sprintf("%s mailbox %q: %s", user, mailbox, detail))
		}); err != nil {
			return fmt.Errorf("%s check: %w", inv.name, err)
		}
	}
	return nil
}

func (s *Store) eachRow(ctx context.Context, query string, fn func(a, b, c string)) error {
	rows, err := s.rdb.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var a, b, c string
		if err := rows.Scan(&a, &b, &c); err != nil {
			return err
		}
		fn(a, b, c)
	}
	return rows.Err()
}

// checkUsage checks that each user's used_bytes, which the quota check reads, is the sum of their message sizes.
func (s *Store) checkUsage(ctx context.Context, _ bool, counts map[string]int64, problem func(string, string)) error {
	var n int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	counts["users"] = n
	return s.eachRow(ctx, `SELECT u.address, u.used_bytes, COALESCE((SELECT SUM(m.size) FROM messages m
			JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.user_id = u.id), 0) AS sum
		FROM users u WHERE u.used_bytes <> sum OR u.used_bytes < 0`, func(user, used, sum string) {
		problem("quota", fmt.Sprintf("%s: used_bytes is %s, the messages add up to %s", user, used, sum))
	})
}

// checkMeta reports cached structures whose blob file is gone (GCBlobs deletes the row before the file, so a
// crash cannot leave one).
func (s *Store) checkMeta(ctx context.Context, _ bool, counts map[string]int64, problem func(string, string)) error {
	ids, err := s.queryStrings(ctx, `SELECT blob_id FROM blob_meta`)
	if err != nil {
		return fmt.Errorf("blob_meta: %w", err)
	}
	for _, id := range ids {
		counts["blob structures"]++
		if _, ok, err := s.blobSize(ctx, id); err != nil {
			return err
		} else if !ok {
			problem("blob_meta", fmt.Sprintf("the cached structure of blob %s remains, the blob is gone", id))
		}
	}
	return nil
}

// OrphanBlobs calls fn for every blob file that no message copy and no queue entry references, with its size and
// modification time. A young one may be a delivery in flight (its rows are not committed yet).
func (s *Store) OrphanBlobs(ctx context.Context, fn func(id string, size int64, modTime time.Time)) error {
	// Files first, references after: a blob committed in between then counts as referenced, never the reverse.
	ids, err := s.blobs.List(ctx, time.Now().Add(time.Hour))
	if err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	for _, id := range ids {
		still, err := s.stillReferenced(ctx, id)
		if err != nil {
			return fmt.Errorf("blob %s: %w", id, err)
		}
		if still {
			continue
		}
		info, err := s.blobInfo(ctx, id)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, io.EOF) {
			continue // collected meanwhile
		}
		if err != nil {
			return err
		}
		fn(id, info.Size(), info.ModTime())
	}
	return nil
}
