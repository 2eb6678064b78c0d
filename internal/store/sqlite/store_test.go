package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/store"
)

// fixture opens a store on a new dir with one domain and one user.
func fixture(t *testing.T, group bool) (*Store, store.User, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "postern.db")
	s, err := Open(ctx, Options{Path: path, GroupCommit: group})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.AddDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	u, err := s.AddUser(ctx, store.User{Address: "u@example.org", PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	return s, u, path
}

func inboxCount(t *testing.T, s *Store, userID int64) int {
	t.Helper()
	st, err := s.ListMailboxes(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	return st[0].Messages
}

// TestCloseWhileDelivering: every Deliver racing with Close returns, and returns nil only for a stored message.
func TestCloseWhileDelivering(t *testing.T) {
	for _, group := range []bool{true, false} {
		t.Run(fmt.Sprintf("group=%v", group), func(t *testing.T) {
			ctx := context.Background()
			s, u, path := fixture(t, group)
			ref, err := s.Blobs().Put(ctx, strings.NewReader("Subject: x\r\n\r\nx\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			const n = 100
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					errs[i] = s.Deliver(ctx, &store.Delivery{Blob: ref, Local: []store.LocalCopy{{UserID: u.ID}}})
				})
			}
			time.Sleep(5 * time.Millisecond)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			ok := 0
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case errors.Is(err, store.ErrClosed), strings.Contains(err.Error(), "database is closed"):
				default:
					t.Fatalf("Deliver during Close: %v", err)
				}
			}
			if err := s.Deliver(ctx, &store.Delivery{Blob: ref, Local: []store.LocalCopy{{UserID: u.ID}}}); !errors.Is(err, store.ErrClosed) {
				t.Fatalf("Deliver after Close: %v", err)
			}
			s2, err := Open(ctx, Options{Path: path, GroupCommit: group})
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			if got := inboxCount(t, s2, u.ID); got != ok {
				t.Fatalf("%d deliveries reported success, %d stored", ok, got)
			}
		})
	}
}

// lockDB holds the database's write lock from another connection, as the CLI in another process may.
func lockDB(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := openDB(path, "immediate")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`UPDATE domains SET created_at = created_at`); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := tx.Commit(); err != nil {
			t.Error(err)
		}
		db.Close()
	}
}

// TestCancelWhileWaiting: a caller that gives up while the writer waits for the lock gets its ctx error, and its
// delivery is not committed later behind its back; the others in the same batch still are.
func TestCancelWhileWaiting(t *testing.T) {
	ctx := context.Background()
	s, u, path := fixture(t, true)
	ref, err := s.Blobs().Put(ctx, strings.NewReader("Subject: x\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	release := lockDB(t, path)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	patient := make(chan error, 1)
	go func() {
		patient <- s.Deliver(ctx, &store.Delivery{Blob: ref, Local: []store.LocalCopy{{UserID: u.ID}}})
	}()
	err = s.Deliver(short, &store.Delivery{Blob: ref, Local: []store.LocalCopy{{UserID: u.ID}}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deliver while the database is locked: %v", err)
	}
	release()
	if err := <-patient; err != nil {
		t.Fatal(err)
	}
	if got := inboxCount(t, s, u.ID); got != 1 {
		t.Fatalf("%d messages stored, want only the patient caller's", got)
	}
}

// TestTwoProcesses: the server and the CLI open the same file; concurrent writes from both wait for each other
// (busy_timeout, BEGIN IMMEDIATE) instead of failing with SQLITE_BUSY.
func TestTwoProcesses(t *testing.T) {
	ctx := context.Background()
	a, u, path := fixture(t, true)
	b, err := Open(ctx, Options{Path: path, GroupCommit: false})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ref, err := a.Blobs().Put(ctx, strings.NewReader("Subject: x\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	errs := make(chan error, 2*n+1)
	var wg sync.WaitGroup
	for i := range 2 * n {
		s := []*Store{a, b}[i%2]
		wg.Go(func() {
			errs <- s.Deliver(ctx, &store.Delivery{Blob: ref, Local: []store.LocalCopy{{UserID: u.ID}}})
		})
	}
	wg.Go(func() { errs <- b.SetAccess(ctx, store.AccessRule{Pattern: "192.0.2.1", Action: store.ActionReject}) })
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	mb, err := b.GetMailbox(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := a.ListMessages(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if m.UID != uint32(i+1) {
			t.Fatalf("UID at %d is %d", i, m.UID)
		}
	}
	if len(msgs) != 2*n {
		t.Fatalf("%d messages, want %d", len(msgs), 2*n)
	}
}

// TestMigrate opens a database left at schema 1 with mail in it: Open upgrades it and recomputes the usage the
// triggers of migration 2 maintain from then on. A database newer than the code is refused.
func TestMigrate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := openDB(path, "immediate")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_version (version INTEGER NOT NULL)`, migrations[0], `INSERT INTO schema_version VALUES (1)`,
		`INSERT INTO domains VALUES ('example.org', 0)`,
		`INSERT INTO users (id, address, domain, password_hash, created_at) VALUES (7, 'old@example.org', 'example.org', 'x', 0)`,
		`INSERT INTO mailboxes (id, user_id, name, uidvalidity, uidnext) VALUES (3, 7, 'INBOX', 1, 2)`,
		`INSERT INTO messages (mailbox_id, uid, blob_id, size, internal_date, modseq) VALUES (3, 1, 'b', 1234, 0, 2)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s, err := Open(ctx, Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if used, err := s.UsageBytes(ctx, 7); err != nil || used != 1234 {
		t.Fatalf("usage after migration = %d, %v", used, err)
	}
	var v int
	if err := s.rdb.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil || v != len(migrations) {
		t.Fatalf("schema version %d, %v; want %d", v, err, len(migrations))
	}
	if err := s.RemoveUser(ctx, "old@example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.Exec(`UPDATE schema_version SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(ctx, Options{Path: path}); err == nil || !strings.Contains(err.Error(), "newer") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

// TestDurabilitySettings guards the pragmas the durability promise rests on.
func TestDurabilitySettings(t *testing.T) {
	s, _, _ := fixture(t, true)
	for _, db := range []*sql.DB{s.wdb, s.rdb} {
		var mode string
		var sync, fk, busy int
		row := db.QueryRow(`SELECT * FROM pragma_journal_mode, pragma_synchronous, pragma_foreign_keys, pragma_busy_timeout`)
		if err := row.Scan(&mode, &sync, &fk, &busy); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || sync != 2 || fk != 1 || busy < 5000 {
			t.Fatalf("journal_mode=%s synchronous=%d foreign_keys=%d busy_timeout=%d", mode, sync, fk, busy)
		}
	}
}
