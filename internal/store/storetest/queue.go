package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/store"
)

// queueTests cover the worker side of the outbound queue: leases and settling.
var queueTests = []namedTest{
	{"QueueLease", testQueueLease},
	{"QueueSettle", testQueueSettle},
	{"QueueLeaseConcurrent", testQueueLeaseConcurrent},
	{"QueueRetryDuringLease", testQueueRetryDuringLease},
	{"QueueRenew", testQueueRenew},
	{"QueueNoticeKeepsEntry", testQueueNoticeKeepsEntry},
}

func queueOne(t *testing.T, s store.Store, id string, next time.Time, rcpts ...string) store.BlobRef {
	t.Helper()
	ref := putBlob(t, s, "Subject: "+id+"\r\n\r\nbody\r\n")
	out := &store.OutboundMessage{ID: id, From: "a@example.org", BlobID: ref.ID, Size: ref.Size, NextAttempt: next,
		CreatedAt: time.Now()}
	for _, r := range rcpts {
		out.Recipients = append(out.Recipients, store.OutboundRecipient{Address: r, Status: "queued"})
	}
	must(t, s.Deliver(context.Background(), &store.Delivery{QueueID: id, Blob: ref, Outbound: out}))
	return ref
}

func testQueueLease(t *testing.T, open Opener) {
	ctx := context.Background()
	s, _ := openT(t, open)
	now := time.Now()
	queueOne(t, s, "L1", now.Add(-2*time.Minute), "x@remote.net")
	queueOne(t, s, "L2", now.Add(-time.Minute), "y@remote.net")
	queueOne(t, s, "L3", now.Add(time.Hour), "z@remote.net")
	if got, err := s.LeaseQueued(ctx, now, now.Add(time.Minute), 0); err != nil || len(got) != 0 {
		t.Fatalf("LeaseQueued limit 0 = %+v, %v", got, err)
	}
	until := now.Add(10 * time.Minute)
	got, err := s.LeaseQueued(ctx, now, until, 1)
	must(t, err)
	if len(got) != 1 || got[0].ID != "L1" || got[0].LeaseUntil.UnixMilli() != until.UnixMilli() {
		t.Fatalf("first lease = %+v (want L1, the oldest due)", got)
	}
	got, err = s.LeaseQueued(ctx, now, until, 10)
	must(t, err)
	if len(got) != 1 || got[0].ID != "L2" {
		t.Fatalf("second lease = %+v (want only L2: L1 is held, L3 is not due)", got)
	}
	if got, _ := s.LeaseQueued(ctx, now, until, 10); len(got) != 0 {
		t.Fatalf("everything due is held, yet LeaseQueued = %+v", got)
	}
	// A lease that ran out (the worker died) is taken again.
	later := until.Add(time.Second)
	got, err = s.LeaseQueued(ctx, later, later.Add(time.Minute), 10)
	must(t, err)
	if len(got) != 2 {
		t.Fatalf("after the leases ran out: %+v", got)
	}
	// The first worker's settle must now fail: its lease was taken over.
	stale := got[0]
	stale.LeaseUntil = until
	if err := s.SettleQueued(ctx, stale, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("settle with a lost lease: %v", err)
	}
	if q, _ := s.GetQueued(ctx, "L3"); !q.LeaseUntil.IsZero() {
		t.Fatalf("unleased entry has LeaseUntil %v", q.LeaseUntil)
	}
}

func testQueueSettle(t *testing.T, open Opener) {
	ctx := context.Background()
	s, _ := openT(t, open)
	must(t, s.AddDomain(ctx, "example.org"))
	u := addUser(t, s, "a@example.org", 0)
	now := time.Now()
	queueOne(t, s, "S1", now.Add(-time.Second), "x@remote.net", "y@remote.net")
	got, err := s.LeaseQueued(ctx, now, now.Add(time.Minute), 10)
	must(t, err)
	if len(got) != 1 {
		t.Fatalf("lease = %+v", got)
	}
	m := got[0]
	// One recipient delivered, one deferred: the entry stays with the new state and no lease.
	m.Recipients[0].Status = "sent"
	m.Recipients[1].Error, m.Recipients[1].Remote, m.Recipients[1].Warned = "451 4.7.1 try later", "mx.remote.net[192.0.2.7]", true
	m.Attempts, m.NextAttempt, m.LastError = 1, now.Add(time.Hour), "451 4.7.1 try later"
	must(t, s.SettleQueued(ctx, m, nil))
	q, err := s.GetQueued(ctx, "S1")
	must(t, err)
	if q.Attempts != 1 || q.NextAttempt.UnixMilli() != m.NextAttempt.UnixMilli() || q.LastError != m.LastError ||
		!q.LeaseUntil.IsZero() || q.Recipients[0].Status != "sent" || q.Recipients[1].Status != "queued" ||
		q.Recipients[1].Remote != "mx.remote.net[192.0.2.7]" || !q.Recipients[1].Warned {
		t.Fatalf("after settle: %+v", q)
	}
	if got, _ := s.LeaseQueued(ctx, now, now.Add(time.Minute), 10); len(got) != 0 {
		t.Fatalf("entry deferred an hour was leased: %+v", got)
	}
	// The last recipient fails: the entry goes and the bounce is committed with it.
	must(t, s.RetryQueued(ctx, "S1"))
	got, err = s.LeaseQueued(ctx, time.Now().Add(time.Second), time.Now().Add(time.Minute), 10)
	must(t, err)
	if len(got) != 1 {
		t.Fatalf("lease after retry = %+v", got)
	}
	m = got[0]
	m.Recipients[1].Status = "failed"
	dsn := putBlob(t, s, "Subject: Undelivered Mail Returned to Sender\r\n\r\nx\r\n")
	bounce := &store.Delivery{QueueID: "S1B", Blob: dsn, InternalDate: now, Local: []store.LocalCopy{{UserID: u.ID}}}
	must(t, s.SettleQueued(ctx, m, bounce))
	if _, err := s.GetQueued(ctx, "S1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("settled entry still queued: %v", err)
	}
	mbs, err := s.ListMailboxes(ctx, u.ID)
	must(t, err)
	if mbs[0].Name != "INBOX" || mbs[0].Messages != 1 {
		t.Fatalf("bounce not in INBOX: %+v", mbs)
	}
	// A failing bounce rolls the settle back: the entry keeps its lease and state.
	queueOne(t, s, "S2", now.Add(-time.Second), "x@remote.net")
	got, err = s.LeaseQueued(ctx, time.Now(), time.Now().Add(time.Minute), 10)
	must(t, err)
	m = got[0]
	m.Recipients[0].Status = "failed"
	bad := &store.Delivery{QueueID: "S2B", Blob: dsn, Local: []store.LocalCopy{{UserID: u.ID + 1000}}}
	if err := s.SettleQueued(ctx, m, bad); err == nil {
		t.Fatal("settle with a bounce to a missing user succeeded")
	}
	if q, err := s.GetQueued(ctx, "S2"); err != nil || q.LeaseUntil.IsZero() {
		t.Fatalf("entry after a failed settle: %+v, %v", q, err)
	}
	// Settling an entry an admin removed meanwhile reports ErrNotFound.
	must(t, s.RemoveQueued(ctx, "S2"))
	if err := s.SettleQueued(ctx, m, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("settle of a removed entry: %v", err)
	}
}

// testQueueLeaseConcurrent: workers leasing at once never share an entry.
func testQueueLeaseConcurrent(t *testing.T, open Opener) {
	ctx := context.Background()
	s, _ := openT(t, open)
	now := time.Now()
	const n = 40
	for i := range n {
		queueOne(t, s, "C"+string(rune('A'+i%26))+string(rune('a'+i/26)), now.Add(-time.Second), "x@remote.net")
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				got, err := s.LeaseQueued(ctx, now, now.Add(time.Hour), 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, m := range got {
					seen[m.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("leased %d distinct entries, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s leased %d times", id, c)
		}
	}
}

// testQueueRetryDuringLease: a retry asked for while a worker holds the entry survives the worker's settle, which
// would otherwise push the next attempt out by its backoff; a retry made before the lease is answered by it.
func testQueueRetryDuringLease(t *testing.T, open Opener) {
	ctx := context.Background()
	s, _ := openT(t, open)
	now := time.Now()
	queueOne(t, s, "R1", now.Add(-time.Second), "x@remote.net")
	leaseOne := func() store.OutboundMessage {
		t.Helper()
		at := time.Now().Add(time.Second)
		got, err := s.LeaseQueued(ctx, at, at.Add(time.Hour), 10)
		must(t, err)
		if len(got) != 1 {
			t.Fatalf("lease = %+v", got)
		}
		return got[0]
	}
	m := leaseOne()
	before := time.Now()
	must(t, s.RetryQueued(ctx, "")) // postern queue flush, during the attempt
	m.Attempts, m.NextAttempt, m.LastError = 1, before.Add(time.Hour), "451 4.4.1 no answer"
	must(t, s.SettleQueued(ctx, m, nil))
	q, err := s.GetQueued(ctx, "R1")
	must(t, err)
	if q.NextAttempt.After(time.Now()) || q.NextAttempt.Before(before.Add(-time.Millisecond)) || q.Attempts != 1 {
		t.Fatalf("flush during the attempt lost: next attempt %v (flushed at %v), attempts %d", q.NextAttempt, before, q.Attempts)
	}
	// The same with retry ID.
	m = leaseOne()
	before = time.Now()
	must(t, s.RetryQueued(ctx, "R1"))
	m.NextAttempt = before.Add(time.Hour)
	must(t, s.SettleQueued(ctx, m, nil))
	if q, _ := s.GetQueued(ctx, "R1"); q.NextAttempt.After(time.Now()) {
		t.Fatalf("retry during the attempt lost: next attempt %v", q.NextAttempt)
	}
	// A retry made before the lease was answered by that attempt: the settle's backoff stands.
	must(t, s.RetryQueued(ctx, "R1"))
	m = leaseOne()
	m.NextAttempt = time.Now().Add(time.Hour)
	must(t, s.SettleQueued(ctx, m, nil))
	if q, _ := s.GetQueued(ctx, "R1"); q.NextAttempt.UnixMilli() != m.NextAttempt.UnixMilli() {
		t.Fatalf("an old retry overrode the backoff: next attempt %v, want %v", q.NextAttempt, m.NextAttempt)
	}
	// A backoff earlier than the request keeps the earlier time.
	must(t, s.RetryQueued(ctx, "R1"))
	m = leaseOne()
	must(t, s.RetryQueued(ctx, "R1"))
	m.NextAttempt = now.Add(-time.Hour)
	must(t, s.SettleQueued(ctx, m, nil))
	if q, _ := s.GetQueued(ctx, "R1"); q.NextAttempt.UnixMilli() != m.NextAttempt.UnixMilli() {
		t.Fatalf("next attempt %v, want the earlier %v", q.NextAttempt, m.NextAttempt)
	}
}

// testQueueRenew: a heartbeat moves the lease on; a stale or lost lease can neither be renewed nor settled.
func testQueueRenew(t *testing.T, open Opener) {
	ctx := context.Background()
	s, _ := openT(t, open)
	now := time.Now()
	queueOne(t, s, "H1", now.Add(-time.Second), "x@remote.net")
	got, err := s.LeaseQueued(ctx, now, now.Add(time.Minute), 10)
	must(t, err)
	if len(got) != 1 {
		t.Fatalf("lease = %+v", got)
	}
	m := got[0]
	renewed := now.Add(2 * time.Minute)
	must(t, s.RenewQueued(ctx, "H1", m.LeaseUntil, renewed))
	if q, _ := s.GetQueued(ctx, "H1"); q.LeaseUntil.UnixMilli() != renewed.UnixMilli() {
		t.Fatalf("LeaseUntil after renewal %v, want %v", q.LeaseUntil, renewed)
	}
	// Past the first lease but within the renewed one, nobody else takes it.
	if got, _ := s.LeaseQueued(ctx, now.Add(90*time.Second), now.Add(time.Hour), 10); len(got) != 0 {
		t.Fatalf("a renewed lease was taken: %+v", got)
	}
	if err := s.RenewQueued(ctx, "H1", m.LeaseUntil, now.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("renew with a stale lease: %v", err)
	}
	if err := s.SettleQueued(ctx, m, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("settle with the lease before renewal: %v", err)
	}
	// The renewed lease runs out (the worker died): another worker takes the entry, the old one has lost it.
	later := renewed.Add(time.Second)
	got, err = s.LeaseQueued(ctx, later, later.Add(time.Minute), 10)
	must(t, err)
	if len(got) != 1 {
		t.Fatalf("lease after the renewed lease ran out = %+v", got)
	}
	if err := s.RenewQueued(ctx, "H1", renewed, later.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("renew of a lease another worker took: %v", err)
	}
	m = got[0]
	m.Recipients[0].Status = "sent"
	must(t, s.SettleQueued(ctx, m, nil))
	if err := s.RenewQueued(ctx, "H1", m.LeaseUntil, later.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("renew of a settled entry: %v", err)
	}
}

// testQueueNoticeKeepsEntry: an entry whose recipients are all done stays while one of them is owed a notice.
func testQueueNoticeKeepsEntry(t *testing.T, open Opener) {
	ctx := context.Background()
	s, _ := openT(t, open)
	now := time.Now()
	queueOne(t, s, "N1", now.Add(-time.Second), "x@remote.net", "y@remote.net")
	got, err := s.LeaseQueued(ctx, now, now.Add(time.Minute), 10)
	must(t, err)
	m := got[0]
	m.Recipients[0].Status = "sent"
	m.Recipients[1].Status = "failed"
	m.Recipients[1].Notice = &store.OutboundNotice{Action: "failed", Status: "5.1.1", Diagnostic: "550 5.1.1 No such user"}
	m.NextAttempt = now.Add(time.Minute)
	m.RequireTLS = true
	must(t, s.SettleQueued(ctx, m, nil))
	q, err := s.GetQueued(ctx, "N1")
	if err != nil {
		t.Fatalf("entry owed a notice was removed: %v", err)
	}
	if !q.RequireTLS {
		t.Fatal("settle did not store RequireTLS")
	}
	if n := q.Recipients[1].Notice; n == nil || *n != *m.Recipients[1].Notice || q.Recipients[1].Status != "failed" {
		t.Fatalf("notice after settle: %+v", q.Recipients[1])
	}
	got, err = s.LeaseQueued(ctx, now.Add(2*time.Minute), now.Add(3*time.Minute), 10)
	must(t, err)
	if len(got) != 1 {
		t.Fatalf("entry owed a notice not leased again: %+v", got)
	}
	m = got[0]
	m.Recipients[1].Notice = nil
	must(t, s.SettleQueued(ctx, m, nil))
	if _, err := s.GetQueued(ctx, "N1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("entry stays after its notice went: %v", err)
	}
}
