package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/postern/postern/internal/store"
)

// testQuotaConcurrent delivers at once to a user with room for some messages and to one without a quota: a
// backend that commits concurrent deliveries together must fail only the copies over quota.
func testQuotaConcurrent(t *testing.T, open Opener) {
	ctx := context.Background()
	s, _ := openT(t, open)
	must(t, s.AddDomain(ctx, "example.org"))
	const size, fits, n = 100, 7, 20
	tight := addUser(t, s, "tight@example.org", size*fits)
	free := addUser(t, s, "free@example.org", 0)
	body := strings.Repeat("q", size)
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	for i := range 2 * n {
		u := []store.User{tight, free}[i%2]
		wg.Go(func() {
			ref, err := s.Blobs().Put(ctx, strings.NewReader(body))
			if err == nil {
				err = s.Deliver(ctx, &store.Delivery{Blob: ref, Local: []store.LocalCopy{{UserID: u.ID}}})
			}
			errs[i] = err
		})
	}
	wg.Wait()
	stored := 0
	for i, err := range errs {
		switch {
		case err == nil && i%2 == 0:
			stored++
		case err == nil:
		case i%2 == 0 && errors.Is(err, store.ErrQuotaExceeded):
		default:
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	if stored != fits {
		t.Fatalf("%d deliveries to a user with room for %d succeeded", stored, fits)
	}
	for _, c := range []struct {
		u    store.User
		want int
	}{{tight, fits}, {free, n}} {
		st, err := s.ListMailboxes(ctx, c.u.ID)
		must(t, err)
		used, err := s.UsageBytes(ctx, c.u.ID)
		must(t, err)
		if st[0].Messages != c.want || used != int64(c.want*size) || st[0].UIDNext != uint32(c.want+1) {
			t.Fatalf("%s: status %+v, usage %d; want %d messages", c.u.Address, st[0], used, c.want)
		}
	}
}

// testMailboxes checks that copies land in the named mailbox, that INBOX is case-insensitive (RFC 9051 5.1), and
// that a copy to a missing mailbox fails the whole delivery.
func testMailboxes(t *testing.T, open Opener) {
	ctx := context.Background()
	s, _ := openT(t, open)
	must(t, s.AddDomain(ctx, "example.org"))
	u := addUser(t, s, "m@example.org", 0)
	ref := putBlob(t, s, "Subject: m\r\n\r\nx\r\n")
	must(t, s.Deliver(ctx, &store.Delivery{Blob: ref, Local: []store.LocalCopy{
		{UserID: u.ID, Mailbox: "inbox"},
		{UserID: u.ID, Mailbox: "Junk", Flags: []string{`\Seen`, "$Junk"}},
	}}))
	err := s.Deliver(ctx, &store.Delivery{Blob: ref, Local: []store.LocalCopy{{UserID: u.ID}, {UserID: u.ID, Mailbox: "NoSuch"}}})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("copy to a missing mailbox: %v", err)
	}
	if _, err := s.GetMailbox(ctx, u.ID, "NoSuch"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetMailbox missing: %v", err)
	}
	if _, err := s.GetMailbox(ctx, u.ID, "junk"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("mailbox names other than INBOX are case-sensitive, got: %v", err)
	}
	st, err := s.ListMailboxes(ctx, u.ID)
	must(t, err)
	got := map[string]store.MailboxStatus{}
	var names []string
	for _, m := range st {
		got[m.Name] = m
		names = append(names, m.Name)
	}
	if want := "INBOX Drafts Junk Sent Trash"; strings.Join(names, " ") != want {
		t.Fatalf("ListMailboxes order = %v, want %s", names, want)
	}
	if got["INBOX"].Messages != 1 || got["INBOX"].Unseen != 1 || got["Junk"].Messages != 1 || got["Junk"].Unseen != 0 {
		t.Fatalf("INBOX %+v, Junk %+v", got["INBOX"], got["Junk"])
	}
	msgs, err := s.ListMessages(ctx, got["Junk"].ID)
	must(t, err)
	if len(msgs) != 1 || fmt.Sprint(msgs[0].Flags) != `[\Seen $Junk]` || msgs[0].Size != ref.Size || msgs[0].BlobID != ref.ID {
		t.Fatalf("Junk messages: %+v", msgs)
	}
}

// testCancelled: a delivery whose context has ended reports it and stores nothing.
func testCancelled(t *testing.T, open Opener) {
	s, _ := openT(t, open)
	must(t, s.AddDomain(context.Background(), "example.org"))
	u := addUser(t, s, "c@example.org", 0)
	ref := putBlob(t, s, "Subject: c\r\n\r\nx\r\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Deliver(ctx, &store.Delivery{Blob: ref, Local: []store.LocalCopy{{UserID: u.ID}}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Deliver with a cancelled context: %v", err)
	}
	st, err := s.ListMailboxes(context.Background(), u.ID)
	must(t, err)
	if st[0].Messages != 0 {
		t.Fatalf("a cancelled delivery was stored: %+v", st[0])
	}
}
