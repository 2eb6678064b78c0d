package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/directory"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/outbound"
	"github.com/postern/postern/internal/store"
)

// clock is a fake time source safe for the heartbeat goroutine.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// funcTransport answers with a function of the context and the message.
type funcTransport func(ctx context.Context, msg *outbound.Message) []outbound.Result

func (f funcTransport) Send(ctx context.Context, msg *outbound.Message) []outbound.Result {
	return f(ctx, msg)
}

// lease takes the due entries as a worker of this queue would, at clk's time.
func (f *fixture) lease(t *testing.T, now time.Time) []store.OutboundMessage {
	t.Helper()
	ms, err := f.st.LeaseQueued(context.Background(), now, now.Add(f.q.opts.Lease), 100)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func (f *fixture) get(t *testing.T, id string) store.OutboundMessage {
	t.Helper()
	m, err := f.st.GetQueued(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestFlushDuringAttempt: `postern queue flush` while a worker is in the middle of an attempt makes the entry due
// at once after the attempt, instead of being overwritten by the attempt's backoff.
func TestFlushDuringAttempt(t *testing.T) {
	f := newFixture(t)
	f.now = time.Now()
	f.tr.block = make(chan struct{})
	f.tr.replies["bob@remote.test"] = outbound.Result{Code: 451, Enhanced: "4.4.1", Text: "No answer", Remote: "mx.remote.test[192.0.2.1]"}
	f.enqueue(t, "F1", "alice@local.test", store.OutboundRecipient{Address: "bob@remote.test"})
	ms := f.lease(t, f.now)
	done := make(chan struct{})
	go func() { f.q.attempt(context.Background(), ms[0]); close(done) }()
	if err := f.st.RetryQueued(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	flushed := time.Now()
	close(f.tr.block)
	<-done
	q := f.get(t, "F1")
	if q.Attempts != 1 || q.NextAttempt.After(flushed) || !q.LeaseUntil.IsZero() {
		t.Fatalf("flush during the attempt lost: next attempt %v (flushed at %v; backoff would be %v), attempts %d",
			q.NextAttempt, flushed, f.now.Add(2*time.Minute), q.Attempts)
	}
}

// TestHeartbeat: a running attempt keeps its entry past the first lease; nobody else takes it meanwhile.
func TestHeartbeat(t *testing.T) {
	f := newFixture(t)
	clk := &clock{t: f.now}
	f.q.opts.Now, f.q.opts.Heartbeat = clk.Now, 2*time.Millisecond
	if f.q.opts.Lease > 2*time.Minute {
		t.Fatalf("default lease %v: a crashed worker would hold its entry that long", f.q.opts.Lease)
	}
	f.tr.block = make(chan struct{})
	f.enqueue(t, "H1", "alice@local.test", store.OutboundRecipient{Address: "bob@remote.test"})
	ms := f.lease(t, clk.Now())
	first := ms[0].LeaseUntil
	done := make(chan struct{})
	go func() { f.q.attempt(context.Background(), ms[0]); close(done) }()
	later := clk.Add(10 * time.Minute) // far past the first lease
	waitFor(t, func() bool { return f.get(t, "H1").LeaseUntil.After(later) })
	if got := f.lease(t, later); len(got) != 0 {
		t.Fatalf("another worker took an entry whose attempt is running (first lease %v): %+v", first, got)
	}
	close(f.tr.block)
	<-done
	if _, err := f.st.GetQueued(context.Background(), "H1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delivered entry not settled after renewals: %v", err)
	}
}

// TestLostLease: when another worker took the entry (or an admin removed it), the attempt is cut short and
// settles nothing, leaving the entry to its new holder.
func TestLostLease(t *testing.T) {
	for _, how := range []string{"taken", "removed"} {
		t.Run(how, func(t *testing.T) {
			f := newFixture(t)
			clk := &clock{t: f.now}
			f.q.opts.Now, f.q.opts.Heartbeat = clk.Now, 2*time.Millisecond
			f.tr.block = make(chan struct{}) // only the lost lease ends the attempt
			f.enqueue(t, "X1", "alice@local.test", store.OutboundRecipient{Address: "bob@remote.test"})
			ms := f.lease(t, clk.Now())
			done := make(chan struct{})
			go func() { f.q.attempt(context.Background(), ms[0]); close(done) }()
			var stolen []store.OutboundMessage
			if how == "taken" {
				// The renewals stalled long enough for the lease to run out, and another worker took the entry.
				at := clk.Now().Add(time.Hour)
				stolen = f.lease(t, at)
				if len(stolen) != 1 {
					t.Fatalf("entry not taken over: %+v", stolen)
				}
			} else if err := f.st.RemoveQueued(context.Background(), "X1"); err != nil {
				t.Fatal(err)
			}
			<-done
			if how == "removed" {
				if _, err := f.st.GetQueued(context.Background(), "X1"); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("a removed entry came back: %v", err)
				}
				return
			}
			q := f.get(t, "X1")
			if !q.LeaseUntil.Equal(stolen[0].LeaseUntil) || q.Attempts != 0 || q.Recipients[0].Status != "queued" {
				t.Fatalf("the old holder settled a lost lease: %+v", q)
			}
			if !strings.Contains(f.log.String(), "cut short") {
				t.Errorf("mail log: %s", f.log.String())
			}
		})
	}
}

// TestCrashResumesWithinLease: a worker that dies holding an entry (no settle, no heartbeat) delays it by one
// short lease at most, and the message is sent once more, not twice.
func TestCrashResumesWithinLease(t *testing.T) {
	f := newFixture(t)
	clk := &clock{t: f.now}
	f.q.opts.Now = clk.Now
	f.enqueue(t, "C1", "alice@local.test", store.OutboundRecipient{Address: "bob@remote.test"})
	crashed := f.lease(t, clk.Now()) // the dead worker's lease
	if len(crashed) != 1 {
		t.Fatal("no lease")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.q.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	clk.Add(2*time.Minute + time.Second)
	f.q.Kick()
	waitFor(t, func() bool { _, err := f.st.GetQueued(ctx, "C1"); return errors.Is(err, store.ErrNotFound) })
	f.tr.mu.Lock()
	defer f.tr.mu.Unlock()
	if len(f.tr.calls) != 1 {
		t.Fatalf("sent %d times after the crash, want once", len(f.tr.calls))
	}
}

// TestShutdownKeepsAnswers: recipients answered before Shutdown cut the attempt keep their answer (a 250 is
// never sent again after the restart); the others are due at once and the attempt does not count.
func TestShutdownKeepsAnswers(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	f.q.opts.Transport = funcTransport(func(tctx context.Context, msg *outbound.Message) []outbound.Result {
		cancel() // Shutdown arrives after the first recipient's 250
		<-tctx.Done()
		return []outbound.Result{
			{Recipient: msg.Recipients[0].Address, Code: 250, Enhanced: "2.0.0", Text: "Ok", Remote: "mx.remote.test[192.0.2.1]", DSN: true},
			{Recipient: msg.Recipients[1].Address, Code: 451, Enhanced: "4.4.2", Text: "connection closed"},
		}
	})
	f.enqueue(t, "D1", "alice@local.test", store.OutboundRecipient{Address: "bob@remote.test"},
		store.OutboundRecipient{Address: "carol@remote.test"})
	ms := f.lease(t, f.now)
	f.q.attempt(ctx, ms[0])
	q := f.get(t, "D1")
	if q.Recipients[0].Status != "sent" || q.Recipients[1].Status != "queued" || q.Attempts != 0 ||
		!q.NextAttempt.Equal(f.now) || !q.LeaseUntil.IsZero() || q.LastError != "" {
		t.Fatalf("after shutdown: %+v", q)
	}
}

// TestMissingResults: a transport that returns fewer results than recipients never makes one count as sent.
func TestMissingResults(t *testing.T) {
	f := newFixture(t)
	f.q.opts.Transport = funcTransport(func(_ context.Context, msg *outbound.Message) []outbound.Result {
		return []outbound.Result{{Recipient: msg.Recipients[1].Address, Code: 250, Enhanced: "2.0.0", DSN: true}}
	})
	f.enqueue(t, "M1", "alice@local.test", store.OutboundRecipient{Address: "bob@remote.test"},
		store.OutboundRecipient{Address: "carol@remote.test"})
	f.runOnce(t)
	q := f.get(t, "M1")
	if q.Recipients[0].Status != "queued" || q.Recipients[1].Status != "sent" {
		t.Fatalf("statuses: %+v", q.Recipients)
	}
}

// TestBounceNeverLost: when the DSN cannot be committed (the sender's mailbox is over quota) the entry stays, the
// recipient is not tried again, and the next attempt delivers the DSN.
func TestBounceNeverLost(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.st.SetQuota(ctx, "alice@local.test", 1); err != nil {
		t.Fatal(err)
	}
	f.tr.replies["nobody@remote.test"] = perm(550, "5.1.1", "No such user")
	f.enqueue(t, "B1", "alice@local.test", store.OutboundRecipient{Address: "bob@remote.test"},
		store.OutboundRecipient{Address: "nobody@remote.test"})
	f.runOnce(t)
	q := f.get(t, "B1")
	if q.Recipients[0].Status != "sent" || q.Recipients[1].Status != "failed" || q.Recipients[1].Notice == nil ||
		q.Recipients[1].Notice.Status != "5.1.1" || !q.NextAttempt.After(f.now) {
		t.Fatalf("entry after the DSN failed: %+v", q)
	}
	if n := len(f.inbox(t)); n != 0 {
		t.Fatalf("%d messages in a full mailbox", n)
	}
	if err := f.st.SetQuota(ctx, "alice@local.test", 0); err != nil {
		t.Fatal(err)
	}
	f.now = q.NextAttempt
	f.runOnce(t)
	if _, err := f.st.GetQueued(ctx, "B1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("entry stays after its DSN went: %v", err)
	}
	inbox := f.inbox(t)
	if len(inbox) != 1 {
		t.Fatalf("%d DSNs", len(inbox))
	}
	if _, fields, _, _ := dsnParts(t, inbox[0]); len(fields) != 2 || fields[1]["Final-Recipient"] != "rfc822; nobody@remote.test" {
		t.Fatalf("DSN fields %v", fields)
	}
	if len(f.tr.calls) != 1 {
		t.Fatalf("transport calls %v: a recipient was tried again", f.tr.calls)
	}
}

// flakyDir fails to resolve the sender while fail is set.
type flakyDir struct {
	Resolver
	fail bool
}

func (d *flakyDir) Resolve(ctx context.Context, a mail.Address) (directory.Resolution, error) {
	if d.fail {
		return directory.Resolution{}, errors.New("database is locked")
	}
	return d.Resolver.Resolve(ctx, a)
}

// TestBounceKeptWhenUnbuildable: a DSN that cannot be built (the directory is down) is not dropped either.
func TestBounceKeptWhenUnbuildable(t *testing.T) {
	f := newFixture(t)
	dir := &flakyDir{Resolver: f.q.opts.Directory, fail: true}
	f.q.opts.Directory = dir
	f.tr.replies["nobody@remote.test"] = perm(550, "5.1.1", "No such user")
	f.enqueue(t, "B2", "alice@local.test", store.OutboundRecipient{Address: "nobody@remote.test"})
	f.runOnce(t)
	q := f.get(t, "B2")
	if q.Recipients[0].Notice == nil {
		t.Fatalf("notice dropped: %+v", q)
	}
	dir.fail = false
	f.now = q.NextAttempt
	f.runOnce(t)
	if len(f.inbox(t)) != 1 {
		t.Fatal("DSN not delivered on the next attempt")
	}
	// Past twice the expiry, a DSN that still cannot be built is dropped (and logged), not kept forever.
	dir.fail = true
	f.enqueue(t, "B3", "alice@local.test", store.OutboundRecipient{Address: "nobody@remote.test"})
	f.runOnce(t)
	f.now = f.now.Add(10*24*time.Hour + time.Minute)
	f.runOnce(t)
	if _, err := f.st.GetQueued(context.Background(), "B3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("undeliverable DSN kept forever: %v", err)
	}
	if !strings.Contains(f.log.String(), "B3 discarded") {
		t.Errorf("drop not logged: %s", f.log.String())
	}
}

// TestRequireTLSBounce: RFC 8689 5: the DSN of a REQUIRETLS message returns its header only, even with RET=FULL,
// and one for a remote sender is itself sent with REQUIRETLS.
func TestRequireTLSBounce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.tr.replies["nobody@remote.test"] = perm(550, "5.1.1", "No such user")
	for _, tc := range []struct{ id, from string }{{"T1", "alice@local.test"}, {"T2", "carol@elsewhere.test"}} {
		ref, err := f.st.Blobs().Put(ctx, strings.NewReader(original))
		if err != nil {
			t.Fatal(err)
		}
		out := &store.OutboundMessage{ID: tc.id, From: tc.from, BlobID: ref.ID, Size: ref.Size, Ret: "FULL", RequireTLS: true,
			NextAttempt: f.now, CreatedAt: f.now, Recipients: []store.OutboundRecipient{{Address: "nobody@remote.test", Status: "queued"}}}
		if err := f.st.Deliver(ctx, &store.Delivery{QueueID: tc.id, Blob: ref, Outbound: out}); err != nil {
			t.Fatal(err)
		}
	}
	f.runOnce(t)
	inbox := f.inbox(t)
	if len(inbox) != 1 {
		t.Fatalf("%d DSNs for alice", len(inbox))
	}
	_, _, returned, body := dsnParts(t, inbox[0])
	if returned != "text/rfc822-headers" || strings.Contains(inbox[0], "At noon?") || !strings.Contains(body, "Subject: Lunch") {
		t.Fatalf("REQUIRETLS DSN returned %q:\n%s", returned, inbox[0])
	}
	q, _ := f.st.ListQueue(ctx)
	if len(q) != 1 || q[0].From != "" || !q[0].RequireTLS {
		t.Fatalf("DSN to the remote sender: %+v", q)
	}
	// The sender's MX does not offer REQUIRETLS: the DSN is not discarded but sent again without (RFC 8689 5).
	f.tr.replies["carol@elsewhere.test"] = perm(550, "5.7.30", "REQUIRETLS support required")
	f.runOnce(t)
	dsn := f.get(t, q[0].ID)
	if dsn.RequireTLS || dsn.Recipients[0].Status != "queued" {
		t.Fatalf("DSN after a 5.7.30: %+v", dsn)
	}
	delete(f.tr.replies, "carol@elsewhere.test")
	f.now = dsn.NextAttempt
	f.runOnce(t)
	if q, _ := f.st.ListQueue(ctx); len(q) != 0 {
		t.Fatalf("DSN not delivered without REQUIRETLS: %+v", q)
	}
}

// TestScheduleOverFiveDays follows a message that is always deferred: the gaps between attempts follow
// retryDelay plus at most 20% of jitter, one delay warning comes after 4 hours, and the message bounces at
// the 5-day expiry, not later.
func TestScheduleOverFiveDays(t *testing.T) {
	for _, jitter := range []float64{0, 0.999} {
		f := newFixture(t)
		f.q.opts.Jitter = func() float64 { return jitter }
		f.tr.replies["slow@remote.test"] = outbound.Result{Code: 421, Enhanced: "4.4.2", Text: "Try later", Remote: "mx.remote.test[192.0.2.1]"}
		f.enqueue(t, "S1", "alice@local.test", store.OutboundRecipient{Address: "slow@remote.test"})
		created := f.now
		attempts, warnedAt := 0, time.Duration(-1)
		for {
			if f.runOnce(t) != 1 {
				t.Fatalf("jitter %v: nothing due at %v", jitter, f.now.Sub(created))
			}
			attempts++
			if warnedAt < 0 && len(f.inbox(t)) == 1 {
				warnedAt = f.now.Sub(created)
			}
			q, err := f.st.GetQueued(context.Background(), "S1")
			if errors.Is(err, store.ErrNotFound) {
				break
			}
			age, gap := f.now.Sub(created), q.NextAttempt.Sub(f.now)
			d := retryDelay(age)
			if end := created.Add(5 * 24 * time.Hour); !q.NextAttempt.Equal(end) && (gap < d || gap > d+d/5) {
				t.Fatalf("jitter %v, age %v: next attempt in %v, want %v + up to 20%%", jitter, age, gap, d)
			}
			f.now = q.NextAttempt
		}
		age := f.now.Sub(created)
		if age != 5*24*time.Hour {
			t.Errorf("jitter %v: bounced at %v, want at the 5-day expiry", jitter, age)
		}
		if warnedAt < 4*time.Hour || warnedAt > 5*time.Hour {
			t.Errorf("jitter %v: delay warning at %v", jitter, warnedAt)
		}
		if n := len(f.inbox(t)); n != 2 {
			t.Errorf("jitter %v: %d DSNs, want one warning and one bounce", jitter, n)
		}
		t.Logf("jitter %v: %d attempts in 5 days, warning at %v", jitter, attempts, warnedAt)
	}
}

// TestMailLogPerAttempt: the mail log has one line per attempt per recipient, with the remote host and its reply.
func TestMailLogPerAttempt(t *testing.T) {
	f := newFixture(t)
	f.tr.replies["bob@remote.test"] = outbound.Result{Code: 451, Enhanced: "4.7.1", Text: "Greylisted", Remote: "mx.remote.test[192.0.2.1]"}
	f.enqueue(t, "L1", "alice@local.test", store.OutboundRecipient{Address: "bob@remote.test"},
		store.OutboundRecipient{Address: "carol@remote.test"})
	f.runOnce(t)
	delete(f.tr.replies, "bob@remote.test")
	f.now = f.now.Add(3 * time.Minute)
	f.runOnce(t)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(f.log.String()), "\n") {
		lines = append(lines, l[strings.IndexByte(l, ' ')+1:]) // without the time stamp
	}
	want := []string{
		`L1 deferred from=<alice@local.test> to=<bob@remote.test> size=98 remote=mx.remote.test[192.0.2.1] status="451 4.7.1 Greylisted" detail="attempt 1"`,
		`L1 delivered from=<alice@local.test> to=<carol@remote.test> size=98 remote=mx.remote.test[192.0.2.1] status="250 2.0.0 Ok" detail="attempt 1; TLS 1.3"`,
		`L1 delivered from=<alice@local.test> to=<bob@remote.test> size=98 remote=mx.remote.test[192.0.2.1] status="250 2.0.0 Ok" detail="attempt 2; TLS 1.3"`,
	}
	if got, w := strings.Join(lines, "\n"), strings.ReplaceAll(strings.Join(want, "\n"), "size=98", fmt.Sprintf("size=%d", len(original))); got != w {
		t.Fatalf("mail log:\n%s\nwant:\n%s", got, w)
	}
}
