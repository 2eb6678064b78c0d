package sqlite

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/store"
)

// TestGCBlobMeta: a blob that only blob_meta still names (its messages expunged) is an orphan; its meta row goes
// with it. A blob a message still references keeps both.
func TestGCBlobMeta(t *testing.T) {
	ctx := context.Background()
	s, u, _ := fixture(t, true)
	gone, err := s.Blobs().Put(ctx, strings.NewReader("Subject: gone\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	kept, err := s.Blobs().Put(ctx, strings.NewReader("Subject: kept\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []store.BlobRef{gone, kept} {
		if err := s.Deliver(ctx, &store.Delivery{Blob: ref, Meta: []byte("meta " + ref.ID), Local: []store.LocalCopy{{UserID: u.ID}}}); err != nil {
			t.Fatal(err)
		}
	}
	mb, err := s.GetMailbox(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, store.ExpungeRequest{MailboxID: mb.ID, UIDs: store.UIDSet{{Start: 1, Stop: 1}}}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.GCBlobs(ctx, 0); err != nil || n != 1 {
		t.Fatalf("GCBlobs = %d, %v", n, err)
	}
	metaRows := func(id string) int {
		var n int
		if err := s.rdb.QueryRow(`SELECT COUNT(*) FROM blob_meta WHERE blob_id = ?`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if metaRows(gone.ID) != 0 || metaRows(kept.ID) != 1 {
		t.Fatalf("blob_meta rows: gone %d, kept %d", metaRows(gone.ID), metaRows(kept.ID))
	}
	if _, err := s.Blobs().Open(ctx, gone.ID); err == nil {
		t.Fatal("orphan blob survived")
	}
	msgs, err := s.Messages(ctx, store.MessageQuery{MailboxID: mb.ID, WithMeta: true})
	if err != nil || len(msgs) != 1 || string(msgs[0].Meta) != "meta "+kept.ID {
		t.Fatalf("kept message: %+v, %v", msgs, err)
	}
}

// TestMigrate3 upgrades a database at schema 2: subscriptions come from mailboxes.subscribed, SAVEDATE from the
// internal date, and the UIDVALIDITY counter starts above every existing mailbox's.
func TestMigrate3(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v2.db")
	db, err := openDB(path, "immediate")
	if err != nil {
		t.Fatal(err)
	}
	future := int64(4_000_000_000) // a UIDVALIDITY above any time-based value (year 2096)
	for _, q := range []string{
		`CREATE TABLE schema_version (version INTEGER NOT NULL)`, migrations[0], migrations[1], `INSERT INTO schema_version VALUES (2)`,
		`INSERT INTO domains VALUES ('example.org', 0)`,
		`INSERT INTO users (id, address, domain, password_hash, created_at) VALUES (7, 'old@example.org', 'example.org', 'x', 0)`,
		`INSERT INTO mailboxes (id, user_id, name, uidvalidity, uidnext, subscribed) VALUES (3, 7, 'INBOX', 5, 2, 1)`,
		`INSERT INTO mailboxes (id, user_id, name, uidvalidity, uidnext, subscribed) VALUES (4, 7, 'Hidden', 4000000000, 1, 0)`,
		`INSERT INTO messages (mailbox_id, uid, blob_id, size, internal_date, flags, modseq) VALUES (3, 1, 'b', 1234, 1700000000, '\Seen', 2)`,
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
	defer s.Close()
	subs, err := s.ListSubscriptions(ctx, 7)
	if err != nil || strings.Join(subs, ",") != "INBOX" {
		t.Fatalf("subscriptions after migration: %v, %v", subs, err)
	}
	msgs, err := s.Messages(ctx, store.MessageQuery{MailboxID: 3})
	if err != nil || len(msgs) != 1 || msgs[0].SaveDate.Unix() != 1700000000 || msgs[0].Flags[0] != `\Seen` {
		t.Fatalf("messages after migration: %+v, %v", msgs, err)
	}
	mb, err := s.CreateMailbox(ctx, 7, "New", "")
	if err != nil {
		t.Fatal(err)
	}
	if int64(mb.UIDValidity) <= future {
		t.Fatalf("new mailbox UIDVALIDITY %d, not above the existing %d", mb.UIDValidity, future)
	}
}
