// Package storetest is the conformance suite every store backend must pass (SQLite now, PostgreSQL later).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/store"
)

// Opener opens the backend on dir; called again with the same dir it must see the same data.
type Opener func(t *testing.T, dir string) store.Store

// Run runs every conformance test against the backend.
func Run(t *testing.T, open Opener) {
	tests := []namedTest{
		{"Directory", testDirectory},
		{"DeliverShared", testDeliverShared},
		{"Quota", testQuota},
		{"Queue", testQueue},
		{"QuotaConcurrent", testQuotaConcurrent},
		{"Mailboxes", testMailboxes},
		{"Cancelled", testCancelled},
		{"Concurrent", testConcurrent},
		{"Persistence", testPersistence},
	}
	tests = append(tests, mailboxTests...)
	tests = append(tests, messageTests...)
	tests = append(tests, queueTests...)
	tests = append(tests, imapTests...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

func openT(t *testing.T, open Opener) (store.Store, string) {
	dir := t.TempDir()
	s := open(t, dir)
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func addUser(t *testing.T, s store.Store, address string, quota int64) store.User {
	t.Helper()
	u, err := s.AddUser(context.Background(), store.User{Address: address, PasswordHash: "$argon2id$x", QuotaBytes: quota})
	must(t, err)
	return u
}

func putBlob(t *testing.T, s store.Store, body string) store.BlobRef {
	t.Helper()
	ref, err := s.Blobs().Put(context.Background(), strings.NewReader(body))
	must(t, err)
	return ref
}

func testDirectory(t *testing.T, open Opener) {
	ctx := context.Background()
	s, _ := openT(t, open)
	must(t, s.AddDomain(ctx, "Example.ORG"))
	if err := s.AddDomain(ctx, "example.org"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate domain: %v", err)
	}
	if ok, err := s.HasDomain(ctx, "EXAMPLE.org"); err != nil || !ok {
		t.Fatalf("HasDomain = %v, %v", ok, err)
	}
	if _, err := s.AddUser(ctx, store.User{Address: "a@nowhere.org", PasswordHash: "h"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("user in unknown domain: %v", err)
	}
	u := addUser(t, s, "Alice@example.org", 0)
	if u.ID == 0 || u.Address != "alice@example.org" {
		t.Fatalf("AddUser = %+v", u)
	}
	if _, err := s.AddUser(ctx, store.User{Address: "alice@example.org", PasswordHash: "h"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate user: %v", err)
	}
	got, err := s.GetUser(ctx, "ALICE@example.org")
	must(t, err)
	if got.ID != u.ID {
		t.Fatalf("GetUser = %+v", got)
	}
	must(t, s.SetPassword(ctx, "alice@example.org", "new-hash"))
	if got, _ := s.GetUserByID(ctx, u.ID); got.PasswordHash != "new-hash" {
		t.Fatalf("SetPassword not stored: %+v", got)
	}
	if err := s.SetPassword(ctx, "nobody@example.org", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetPassword unknown: %v", err)
	}
	mbs, err := s.ListMailboxes(ctx, u.ID)
	must(t, err)
	if len(mbs) != len(store.DefaultMailboxes) || mbs[0].Name != "INBOX" {
		t.Fatalf("default mailboxes: %+v", mbs)
	}
	for _, mb := range mbs {
		if mb.Name == "Junk" && mb.SpecialUse != `\Junk` {
			t.Fatalf("Junk special use: %+v", mb)
		}
	}
	must(t, s.SetAlias(ctx, store.Alias{Address: "team@example.org", Targets: []string{"alice@example.org", "x@remote.net"}}))
	must(t, s.SetAlias(ctx, store.Alias{Address: "@example.org", Targets: []string{"alice@example.org"}}))
	a, err := s.GetAlias(ctx, "TEAM@example.org")
	must(t, err)
	if len(a.Targets) != 2 || a.Targets[1] != "x@remote.net" {
		t.Fatalf("GetAlias = %+v", a)
	}
	if as, _ := s.ListAliases(ctx); len(as) != 2 {
		t.Fatalf("ListAliases = %+v", as)
	}
	if err := s.RemoveDomain(ctx, "example.org"); !errors.Is(err, store.ErrExists) || !strings.Contains(err.Error(), "example.org") {
		t.Fatalf("RemoveDomain with users: %v", err)
	}
	must(t, s.SetAccess(ctx, store.AccessRule{Pattern: "10.0.0.0/8", Action: "relay"}))
	must(t, s.SetAccess(ctx, store.AccessRule{Pattern: "10.0.0.0/8", Action: "REJECT"}))
	rules, err := s.ListAccess(ctx)
	must(t, err)
	if len(rules) != 1 || rules[0].Action != "REJECT" {
		t.Fatalf("access = %+v", rules)
	}
	must(t, s.RemoveAccess(ctx, "10.0.0.0/8"))
	if err := s.RemoveAccess(ctx, "10.0.0.0/8"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RemoveAccess twice: %v", err)
	}
	testDirectoryMore(t, s)
	must(t, s.RemoveAlias(ctx, "team@example.org"))
	must(t, s.RemoveAlias(ctx, "@example.org"))
	must(t, s.RemoveUser(ctx, "alice@example.org"))
	if _, err := s.GetUser(ctx, "alice@example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removed user: %v", err)
	}
	must(t, s.RemoveDomain(ctx, "example.org"))
	if ds, _ := s.ListDomains(ctx); len(ds) != 0 {
		t.Fatalf("domains left: %+v", ds)
	}
}

// testDirectoryMore covers the not-found and update paths; s holds domain example.org with alice and two aliases.
func testDirectoryMore(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, s.AddDomain(ctx, "other.net"))
	bob := addUser(t, s, "bob@other.net", 0)
	if us, err := s.ListUsers(ctx, "OTHER.net"); err != nil || len(us) != 1 || us[0].ID != bob.ID {
		t.Fatalf("ListUsers(other.net) = %+v, %v", us, err)
	}
	if us, err := s.ListUsers(ctx, ""); err != nil || len(us) != 2 || us[0].Address != "alice@example.org" {
		t.Fatalf("ListUsers() = %+v, %v", us, err)
	}
	must(t, s.SetQuota(ctx, "BOB@other.net", 12345))
	if got, err := s.GetUser(ctx, "bob@other.net"); err != nil || got.QuotaBytes != 12345 {
		t.Fatalf("SetQuota not stored: %+v, %v", got, err)
	}
	if err := s.SetQuota(ctx, "nobody@other.net", 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetQuota unknown: %v", err)
	}
	if _, err := s.GetUserByID(ctx, bob.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetUserByID unknown: %v", err)
	}
	must(t, s.RemoveUser(ctx, "bob@other.net"))
	if err := s.RemoveUser(ctx, "bob@other.net"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RemoveUser twice: %v", err)
	}
	must(t, s.SetAlias(ctx, store.Alias{Address: "postmaster@other.net", Targets: []string{"a@x.org"}}))
	must(t, s.SetAlias(ctx, store.Alias{Address: "postmaster@other.net", Targets: []string{"b@x.org"}}))
	if a, err := s.GetAlias(ctx, "postmaster@other.net"); err != nil || len(a.Targets) != 1 || a.Targets[0] != "b@x.org" {
		t.Fatalf("SetAlias did not replace: %+v, %v", a, err)
	}
	if err := s.RemoveDomain(ctx, "other.net"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("RemoveDomain with an alias: %v", err)
	}
	must(t, s.RemoveAlias(ctx, "postmaster@other.net"))
	if _, err := s.GetAlias(ctx, "postmaster@other.net"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAlias removed: %v", err)
	}
	if err := s.RemoveAlias(ctx, "postmaster@other.net"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RemoveAlias twice: %v", err)
	}
	must(t, s.RemoveDomain(ctx, "other.net"))
	if err := s.RemoveDomain(ctx, "other.net"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RemoveDomain twice: %v", err)
	}
	if ok, err := s.HasDomain(ctx, "other.net"); err != nil || ok {
		t.Fatalf("HasDomain removed = %v, %v", ok, err)
	}
}

func testDeliverShared(t *testing.T, open Opener) {
	ctx := context.Background()
	s, _ := openT(t, open)
	must(t, s.AddDomain(ctx, "example.org"))
	var users []store.User
	for _, n := range []string{"a", "b", "c"} {
		users = append(users, addUser(t, s, n+"@example.org", 0))
	}
	for round := 1; round <= 2; round++ {
		ref := putBlob(t, s, fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", round))
		d := &store.Delivery{QueueID: fmt.Sprint("Q", round), Blob: ref, InternalDate: time.Now()}
		for _, u := range users {
			d.Local = append(d.Local, store.LocalCopy{UserID: u.ID})
		}
		must(t, s.Deliver(ctx, d))
	}
	for _, u := range users {
		mb, err := s.GetMailbox(ctx, u.ID, "INBOX")
		must(t, err)
		msgs, err := s.ListMessages(ctx, mb.ID)
		must(t, err)
		if len(msgs) != 2 || msgs[0].UID != 1 || msgs[1].UID != 2 || msgs[1].ModSeq <= msgs[0].ModSeq {
			t.Fatalf("%s INBOX: %+v", u.Address, msgs)
		}
		if mb.UIDNext != 3 {
			t.Fatalf("UIDNEXT = %d", mb.UIDNext)
		}
		r, err := s.Blobs().Open(ctx, msgs[1].BlobID)
		must(t, err)
		b, _ := io.ReadAll(r)
		r.Close()
		if !strings.HasPrefix(string(b), "Subject: 2") {
			t.Fatalf("blob: %q", b)
		}
	}
	st, err := s.ListMailboxes(ctx, users[0].ID)
	must(t, err)
	if st[0].Messages != 2 || st[0].Unseen != 2 || st[0].Size == 0 {
		t.Fatalf("status: %+v", st[0])
	}
	// One blob for three recipients: each copy names the same blob.
	mb0, _ := s.GetMailbox(ctx, users[0].ID, "INBOX")
	mb2, _ := s.GetMailbox(ctx, users[2].ID, "INBOX")
	m0, _ := s.ListMessages(ctx, mb0.ID)
	m2, _ := s.ListMessages(ctx, mb2.ID)
	if m0[0].BlobID != m2[0].BlobID {
		t.Fatalf("copies do not share the blob: %s vs %s", m0[0].BlobID, m2[0].BlobID)
	}
}

func testQuota(t *testing.T, open Opener) {
	ctx := context.Background()
	s, _ := openT(t, open)
	must(t, s.AddDomain(ctx, "example.org"))
	big := addUser(t, s, "big@example.org", 0)
	small := addUser(t, s, "small@example.org", 100)
	ref := putBlob(t, s, strings.Repeat("x", 150))
	err := s.Deliver(ctx, &store.Delivery{Blob: ref, Local: []store.LocalCopy{{UserID: big.ID}, {UserID: small.ID}},
		Outbound: &store.OutboundMessage{ID: "QQ", BlobID: ref.ID, Recipients: []store.OutboundRecipient{{Address: "r@remote.net"}}}})
	if !errors.Is(err, store.ErrQuotaExceeded) || !strings.Contains(err.Error(), "small@example.org") {
		t.Fatalf("over quota: %v (want ErrQuotaExceeded naming the user)", err)
	}
	for _, u := range []store.User{big, small} {
		st, _ := s.ListMailboxes(ctx, u.ID)
		if st[0].Messages != 0 {
			t.Fatalf("%s got a copy of a failed delivery", u.Address)
		}
	}
	if q, _ := s.ListQueue(ctx); len(q) != 0 {
		t.Fatalf("queue entry of a failed delivery: %+v", q)
	}
	ok := putBlob(t, s, strings.Repeat("y", 60))
	must(t, s.Deliver(ctx, &store.Delivery{Blob: ok, Local: []store.LocalCopy{{UserID: small.ID}, {UserID: big.ID}}}))
	if n, _ := s.UsageBytes(ctx, small.ID); n != 60 {
		t.Fatalf("usage = %d", n)
	}
	// The failed delivery must not have used up a UID either.
	mb, err := s.GetMailbox(ctx, big.ID, "INBOX")
	must(t, err)
	if msgs, _ := s.ListMessages(ctx, mb.ID); len(msgs) != 1 || msgs[0].UID != 1 || mb.UIDNext != 2 {
		t.Fatalf("after a failed then a good delivery: UIDNEXT %d, %+v", mb.UIDNext, msgs)
	}
	// Exactly at the quota is allowed: 60 + 40 = 100.
	must(t, s.Deliver(ctx, &store.Delivery{Blob: putBlob(t, s, strings.Repeat("z", 40)), Local: []store.LocalCopy{{UserID: small.ID}}}))
	if err := s.Deliver(ctx, &store.Delivery{Blob: putBlob(t, s, "1"), Local: []store.LocalCopy{{UserID: small.ID}}}); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("one byte over quota: %v", err)
	}
}

func testQueue(t *testing.T, open Opener) {
	ctx := context.Background()
	s, _ := openT(t, open)
	ref := putBlob(t, s, "Subject: out\r\n\r\nx\r\n")
	later := time.Now().Add(time.Hour)
	out := &store.OutboundMessage{ID: "Q1", From: "a@example.org", BlobID: ref.ID, Size: ref.Size, Ret: "HDRS", EnvID: "env1",
		AuthUser: "a@example.org", NextAttempt: later, RequireTLS: true,
		Recipients: []store.OutboundRecipient{{Address: "x@remote.net", Notify: []string{"FAILURE", "DELAY"}, ORcpt: "rfc822;x@remote.net", Status: "queued"}}}
	must(t, s.Deliver(ctx, &store.Delivery{QueueID: "Q1", Blob: ref, Outbound: out}))
	got, err := s.GetQueued(ctx, "Q1")
	must(t, err)
	if got.From != out.From || got.Ret != "HDRS" || got.EnvID != "env1" || len(got.Recipients) != 1 ||
		got.Recipients[0].ORcpt != "rfc822;x@remote.net" || len(got.Recipients[0].Notify) != 2 || !got.RequireTLS {
		t.Fatalf("GetQueued = %+v", got)
	}
	must(t, s.RetryQueued(ctx, "Q1"))
	if got, _ := s.GetQueued(ctx, "Q1"); got.NextAttempt.After(time.Now().Add(time.Second)) {
		t.Fatalf("RetryQueued left next attempt at %v", got.NextAttempt)
	}
	if err := s.RetryQueued(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("retry unknown: %v", err)
	}
	out2 := &store.OutboundMessage{ID: "Q2", BlobID: ref.ID, Size: ref.Size, NextAttempt: later,
		Recipients: []store.OutboundRecipient{{Address: "y@remote.net", Status: "queued"}, {Address: "z@remote.net", Status: "queued"}}}
	must(t, s.Deliver(ctx, &store.Delivery{QueueID: "Q2", Blob: ref, Outbound: out2}))
	if err := s.Deliver(ctx, &store.Delivery{QueueID: "Q2", Blob: ref, Outbound: out2}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate queue id: %v", err)
	}
	must(t, s.RetryQueued(ctx, ""))
	q, err := s.ListQueue(ctx)
	must(t, err)
	if len(q) != 2 || q[1].ID != "Q2" || q[1].From != "" || len(q[1].Recipients) != 2 {
		t.Fatalf("ListQueue = %+v", q)
	}
	for _, m := range q {
		if m.NextAttempt.After(time.Now().Add(time.Second)) {
			t.Fatalf("RetryQueued(\"\") left %s at %v", m.ID, m.NextAttempt)
		}
	}
	must(t, s.RemoveQueued(ctx, "Q1"))
	if _, err := s.GetQueued(ctx, "Q1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removed entry: %v", err)
	}
	if err := s.RemoveQueued(ctx, "Q1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RemoveQueued twice: %v", err)
	}
}

func testConcurrent(t *testing.T, open Opener) {
	ctx := context.Background()
	s, _ := openT(t, open)
	must(t, s.AddDomain(ctx, "example.org"))
	u := addUser(t, s, "busy@example.org", 0)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ref, err := s.Blobs().Put(ctx, strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i)))
			if err == nil {
				err = s.Deliver(ctx, &store.Delivery{Blob: ref, Local: []store.LocalCopy{{UserID: u.ID}}})
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	mb, _ := s.GetMailbox(ctx, u.ID, "INBOX")
	msgs, err := s.ListMessages(ctx, mb.ID)
	must(t, err)
	if len(msgs) != n {
		t.Fatalf("%d messages, want %d", len(msgs), n)
	}
	var size int64
	for i, m := range msgs {
		if m.UID != uint32(i+1) {
			t.Fatalf("UIDs not 1..%d: position %d has %d", n, i, m.UID)
		}
		if i > 0 && m.ModSeq <= msgs[i-1].ModSeq {
			t.Fatalf("MODSEQ not increasing with UID at %d: %d after %d", m.UID, m.ModSeq, msgs[i-1].ModSeq)
		}
		size += m.Size
	}
	st, err := s.ListMailboxes(ctx, u.ID)
	must(t, err)
	if st[0].Name != "INBOX" || st[0].Messages != n || st[0].Unseen != n || st[0].Size != size || st[0].UIDNext != n+1 ||
		st[0].HighestModSeq != msgs[n-1].ModSeq {
		t.Fatalf("INBOX status after %d deliveries: %+v (size %d)", n, st[0], size)
	}
	if used, err := s.UsageBytes(ctx, u.ID); err != nil || used != size {
		t.Fatalf("UsageBytes = %d, %v; want %d", used, err, size)
	}
}

func testPersistence(t *testing.T, open Opener) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	must(t, s.AddDomain(ctx, "example.org"))
	u := addUser(t, s, "p@example.org", 0)
	ref := putBlob(t, s, "Subject: keep\r\n\r\nx\r\n")
	must(t, s.Deliver(ctx, &store.Delivery{Blob: ref, Local: []store.LocalCopy{{UserID: u.ID, Flags: []string{`\Seen`}}}}))
	must(t, s.Deliver(ctx, &store.Delivery{QueueID: "P1", Blob: ref, Outbound: &store.OutboundMessage{ID: "P1", BlobID: ref.ID,
		Recipients: []store.OutboundRecipient{{Address: "r@remote.net", Status: "queued"}}}}))
	must(t, s.Close())
	s = open(t, dir)
	defer s.Close()
	st, err := s.ListMailboxes(ctx, u.ID)
	must(t, err)
	if st[0].Messages != 1 || st[0].Unseen != 0 {
		t.Fatalf("after reopen: %+v", st[0])
	}
	if _, err := s.GetQueued(ctx, "P1"); err != nil {
		t.Fatalf("queue entry after reopen: %v", err)
	}
	r, err := s.Blobs().Open(ctx, ref.ID)
	must(t, err)
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "Subject: keep\r\n\r\nx\r\n" {
		t.Fatalf("blob after reopen: %q", b)
	}
	// UIDs continue where they stopped: a reused UID would break IMAP clients' caches.
	must(t, s.Deliver(ctx, &store.Delivery{Blob: ref, Local: []store.LocalCopy{{UserID: u.ID}}}))
	mb, _ := s.GetMailbox(ctx, u.ID, "INBOX")
	if msgs, _ := s.ListMessages(ctx, mb.ID); len(msgs) != 2 || msgs[1].UID != 2 {
		t.Fatalf("after reopen and delivery: %+v", msgs)
	}
}
