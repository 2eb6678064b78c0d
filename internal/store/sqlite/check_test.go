package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/store"
)

// checkFixture is a store with one user, three delivered messages (one also queued for a remote recipient) and
// the blob directory's path, so a test can damage it the way a crash or a bug would.
func checkFixture(t *testing.T) (*Store, string, []store.BlobRef) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	blobDir := filepath.Join(dir, "blobs")
	s, err := Open(ctx, Options{Path: filepath.Join(dir, "postern.db"), BlobDir: blobDir, GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	u, err := s.AddUser(ctx, store.User{Address: "a@example.test", PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var refs []store.BlobRef
	for i, body := range []string{"Subject: 1\r\n\r\none\r\n", "Subject: 2\r\n\r\ntwo\r\n", "Subject: 3\r\n\r\nthree\r\n"} {
		ref, err := s.Blobs().Put(ctx, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		d := &store.Delivery{QueueID: "Q" + string(rune('A'+i)), Blob: ref, Local: []store.LocalCopy{{UserID: u.ID}}}
		if i == 2 {
			d.Outbound = &store.OutboundMessage{ID: d.QueueID, BlobID: ref.ID, Size: ref.Size,
				Recipients: []store.OutboundRecipient{{Address: "r@remote.test", Status: "queued"}}}
		}
		if err := s.Deliver(ctx, d); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, ref)
	}
	return s, blobDir, refs
}

// runCheck returns the checks that found a problem, by name.
func runCheck(t *testing.T, s *Store) map[string][]string {
	t.Helper()
	found := map[string][]string{}
	counts, err := s.CheckIntegrity(context.Background(), false, func(check, detail string) {
		found[check] = append(found[check], detail)
	})
	if err != nil {
		t.Fatal(err)
	}
	if counts["messages"] < 2 || counts["queue entries"] != 1 || counts["mailboxes"] != 5 || counts["users"] != 1 {
		t.Errorf("counts = %v", counts)
	}
	return found
}

func TestCheckIntegrity(t *testing.T) {
	blobPath := func(dir, id string) string { return filepath.Join(dir, id[:2], id) }
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, s *Store, dir string, refs []store.BlobRef)
		want   string // the check that must fire; "" for none
	}{
		{"clean", func(*testing.T, *Store, string, []store.BlobRef) {}, ""},
		{"missing blob", func(t *testing.T, _ *Store, dir string, refs []store.BlobRef) {
			must(t, os.Remove(blobPath(dir, refs[0].ID)))
		}, "blob"},
		{"truncated blob", func(t *testing.T, _ *Store, dir string, refs []store.BlobRef) {
			must(t, os.Truncate(blobPath(dir, refs[1].ID), 3))
		}, "blob"},
		{"missing queue blob", func(t *testing.T, s *Store, dir string, refs []store.BlobRef) {
			exec(t, s, `DELETE FROM messages WHERE blob_id = ?`, refs[2].ID)
			exec(t, s, `DELETE FROM blob_meta WHERE blob_id = ?`, refs[2].ID)
			must(t, os.Remove(blobPath(dir, refs[2].ID)))
		}, "blob"},
		{"uidnext behind", func(t *testing.T, s *Store, _ string, _ []store.BlobRef) {
			exec(t, s, `UPDATE mailboxes SET uidnext = 2 WHERE name = 'INBOX'`)
		}, "uidnext"},
		{"highestmodseq behind", func(t *testing.T, s *Store, _ string, _ []store.BlobRef) {
			exec(t, s, `UPDATE mailboxes SET highestmodseq = 1 WHERE name = 'INBOX'`)
		}, "highestmodseq"},
		{"expunged uid at uidnext", func(t *testing.T, s *Store, _ string, _ []store.BlobRef) {
			exec(t, s, `INSERT INTO expunged (mailbox_id, uid, modseq) SELECT id, uidnext, 1 FROM mailboxes WHERE name = 'INBOX'`)
		}, "uidnext"},
		{"quota drift", func(t *testing.T, s *Store, _ string, _ []store.BlobRef) {
			exec(t, s, `UPDATE users SET used_bytes = used_bytes + 1`)
		}, "quota"},
		{"queue entry done", func(t *testing.T, s *Store, _ string, _ []store.BlobRef) {
			exec(t, s, `UPDATE queue SET recipients = '[{"Address":"r@remote.test","Status":"sent"}]'`)
		}, "queue"},
		{"stale structure", func(t *testing.T, s *Store, _ string, _ []store.BlobRef) {
			exec(t, s, `INSERT INTO blob_meta (blob_id, meta) VALUES ('0123456789abcdef0123456789abcdef', x'00')`)
		}, "blob_meta"},
		{"dangling message", func(t *testing.T, s *Store, _ string, _ []store.BlobRef) {
			exec(t, s, `PRAGMA foreign_keys = OFF`)
			exec(t, s, `UPDATE messages SET mailbox_id = 999 WHERE uid = 1`)
		}, "foreign_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, dir, refs := checkFixture(t)
			tc.damage(t, s, dir, refs)
			found := runCheck(t, s)
			if tc.want == "" && len(found) > 0 {
				t.Fatalf("clean store: problems %v", found)
			}
			if tc.want != "" && len(found[tc.want]) == 0 {
				t.Fatalf("%s not found; problems: %v", tc.want, found)
			}
			t.Log(found)
		})
	}
}

func TestOrphanBlobs(t *testing.T) {
	ctx := context.Background()
	s, _, _ := checkFixture(t)
	orphan, err := s.Blobs().Put(ctx, strings.NewReader("never committed"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.OrphanBlobs(ctx, func(id string, size int64, mod time.Time) {
		if size != orphan.Size || time.Since(mod) > time.Hour {
			t.Errorf("orphan %s: size %d, modified %v", id, size, mod)
		}
		got = append(got, id)
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != orphan.ID {
		t.Fatalf("orphans = %v, want %s", got, orphan.ID)
	}
	// An orphan is not an inconsistency: the check stays clean.
	if found := runCheck(t, s); len(found) > 0 {
		t.Fatalf("problems %v", found)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// exec runs a statement on the writer connection, outside the store's API, to damage the database.
func exec(t *testing.T, s *Store, query string, args ...any) {
	t.Helper()
	if _, err := s.wdb.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}
