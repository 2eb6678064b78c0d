package queue

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/directory"
	"github.com/postern/postern/internal/maillog"
	"github.com/postern/postern/internal/outbound"
	"github.com/postern/postern/internal/store"
	"github.com/postern/postern/internal/store/sqlite"
)

// fakeTransport answers each recipient from a table ("" means 250) and records what it was asked.
type fakeTransport struct {
	mu      sync.Mutex // guards the fields
	replies map[string]outbound.Result
	calls   [][]string
	block   chan struct{} // when set, Send waits for it or for ctx
}

func (f *fakeTransport) Send(ctx context.Context, msg *outbound.Message) []outbound.Result {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return []outbound.Result{{Recipient: msg.Recipients[0].Address, Code: 451, Enhanced: "4.4.7", Text: "cancelled"}}
		}
	}
	r, _ := msg.Open(ctx)
	io.Copy(io.Discard, r)
	r.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	out := make([]outbound.Result, len(msg.Recipients))
	for i, rc := range msg.Recipients {
		names = append(names, rc.Address)
		res, ok := f.replies[rc.Address]
		if !ok {
			res = outbound.Result{Code: 250, Enhanced: "2.0.0", Text: "Ok", Remote: "mx.remote.test[192.0.2.1]", DSN: true, TLS: "TLS 1.3"}
		}
		res.Recipient = rc.Address
		out[i] = res
	}
	f.calls = append(f.calls, names)
	return out
}

type fixture struct {
	st    *sqlite.Store
	q     *Queue
	tr    *fakeTransport
	now   time.Time
	log   *bytes.Buffer
	alice store.User
}

const original = "From: alice@local.test\r\nTo: bob@remote.test\r\nSubject: Lunch\r\nMessage-ID: <m1@local.test>\r\n\r\nAt noon?\r\n"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.AddDomain(ctx, "local.test"); err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, tr: &fakeTransport{replies: map[string]outbound.Result{}}, log: &bytes.Buffer{},
		now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	if f.alice, err = st.AddUser(ctx, store.User{Address: "alice@local.test", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	dir, err := directory.New(directory.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	f.q, err = New(Options{Store: st, Transport: f.tr, Directory: dir, Hostname: "mail.local.test",
		MailLog: maillog.New(&syncWriter{w: f.log}, nil), Now: func() time.Time { return f.now }, Jitter: func() float64 { return 0 },
		Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// enqueue puts a message from sender to rcpts into the queue, arrived at f.now.
func (f *fixture) enqueue(t *testing.T, id, sender string, rcpts ...store.OutboundRecipient) {
	t.Helper()
	ctx := context.Background()
	ref, err := f.st.Blobs().Put(ctx, strings.NewReader(original))
	if err != nil {
		t.Fatal(err)
	}
	for i := range rcpts {
		rcpts[i].Status = "queued"
	}
	out := &store.OutboundMessage{ID: id, From: sender, Recipients: rcpts, BlobID: ref.ID, Size: ref.Size, EnvID: "env+2B1",
		NextAttempt: f.now, CreatedAt: f.now}
	if err := f.st.Deliver(ctx, &store.Delivery{QueueID: id, Blob: ref, Outbound: out}); err != nil {
		t.Fatal(err)
	}
}

// runOnce leases what is due at f.now and attempts it.
func (f *fixture) runOnce(t *testing.T) int {
	t.Helper()
	ms, err := f.st.LeaseQueued(context.Background(), f.now, f.now.Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		f.q.attempt(context.Background(), m)
	}
	return len(ms)
}

// inbox returns the messages in alice's INBOX.
func (f *fixture) inbox(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	mb, err := f.st.GetMailbox(ctx, f.alice.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := f.st.ListMessages(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		r, err := f.st.Blobs().Open(ctx, m.BlobID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		out = append(out, string(b))
	}
	return out
}

func perm(code int, enh, text string) outbound.Result {
	return outbound.Result{Code: code, Enhanced: enh, Text: text, Remote: "mx.remote.test[192.0.2.1]"}
}

// dsnParts parses a DSN and returns its report type, per-recipient status blocks and the returned content type.
func dsnParts(t *testing.T, msg string) (subject string, fields []map[string]string, returned string, returnedBody string) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	if m.Header.Get("Auto-Submitted") != "auto-replied" || m.Header.Get("Return-Path") != "<>" {
		t.Fatalf("headers: %v", m.Header)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		ct := p.Header.Get("Content-Type")
		types = append(types, strings.Split(ct, ";")[0])
		switch {
		case ct == "message/delivery-status":
			for _, block := range strings.Split(strings.TrimSpace(string(b)), "\r\n\r\n") {
				f := map[string]string{}
				for _, line := range strings.Split(block, "\r\n") {
					k, v, _ := strings.Cut(line, ": ")
					f[k] = v
				}
				fields = append(fields, f)
			}
		case types[0] != "" && len(types) == 3:
			returned, returnedBody = ct, string(b)
		}
	}
	if len(types) < 2 || types[0] != "text/plain" || types[1] != "message/delivery-status" {
		t.Fatalf("parts %v", types)
	}
	return m.Header.Get("Subject"), fields, returned, returnedBody
}

func TestAttemptOutcomes(t *testing.T) {
	f := newFixture(t)
	f.tr.replies["nobody@remote.test"] = perm(550, "5.1.1", "No such user")
	f.tr.replies["grey@remote.test"] = outbound.Result{Code: 451, Enhanced: "4.7.1", Text: "Greylisted", Remote: "mx.remote.test[192.0.2.1]"}
	f.enqueue(t, "Q1", "alice@local.test",
		store.OutboundRecipient{Address: "bob@remote.test"},
		store.OutboundRecipient{Address: "nobody@remote.test", ORcpt: "rfc822;nobody@remote.test"},
		store.OutboundRecipient{Address: "grey@remote.test"})
	if n := f.runOnce(t); n != 1 {
		t.Fatalf("leased %d", n)
	}
	q, err := f.st.GetQueued(context.Background(), "Q1")
	if err != nil {
		t.Fatal(err)
	}
	st := map[string]string{}
	for _, r := range q.Recipients {
		st[r.Address] = r.Status
	}
	if st["bob@remote.test"] != "sent" || st["nobody@remote.test"] != "failed" || st["grey@remote.test"] != "queued" {
		t.Fatalf("statuses %v", st)
	}
	if q.Attempts != 1 || !q.NextAttempt.Equal(f.now.Add(2*time.Minute)) || !q.LeaseUntil.IsZero() || !strings.Contains(q.LastError, "Greylisted") {
		t.Fatalf("entry after attempt: %+v", q)
	}
	inbox := f.inbox(t)
	if len(inbox) != 1 {
		t.Fatalf("alice has %d messages, want the bounce", len(inbox))
	}
	subj, fields, returned, body := dsnParts(t, inbox[0])
	if subj != "Undelivered Mail Returned to Sender" || len(fields) != 2 {
		t.Fatalf("subject %q, fields %v", subj, fields)
	}
	if fields[0]["Reporting-MTA"] != "dns; mail.local.test" || fields[0]["Original-Envelope-Id"] != "env+1" {
		t.Errorf("per-message fields %v", fields[0])
	}
	r := fields[1]
	if r["Final-Recipient"] != "rfc822; nobody@remote.test" || r["Original-Recipient"] != "rfc822; nobody@remote.test" ||
		r["Action"] != "failed" || r["Status"] != "5.1.1" || r["Remote-MTA"] != "dns; mx.remote.test" ||
		r["Diagnostic-Code"] != "smtp; 550 5.1.1 No such user" {
		t.Errorf("recipient fields %v", r)
	}
	if returned != "message/rfc822" || !strings.Contains(body, "Subject: Lunch") || !strings.Contains(body, "At noon?") {
		t.Errorf("returned %q: %q", returned, body)
	}
	// Only the deferred recipient is tried again.
	f.now = f.now.Add(2 * time.Minute)
	delete(f.tr.replies, "grey@remote.test")
	f.runOnce(t)
	if calls := f.tr.calls; len(calls) != 2 || len(calls[1]) != 1 || calls[1][0] != "grey@remote.test" {
		t.Fatalf("calls %v", calls)
	}
	if _, err := f.st.GetQueued(context.Background(), "Q1"); err == nil {
		t.Fatal("entry still queued after every recipient was done")
	}
	log := f.log.String()
	for _, want := range []string{" Q1 delivered from=<alice@local.test> to=<bob@remote.test>", " Q1 bounced from=<alice@local.test> to=<nobody@remote.test>",
		" Q1 deferred from=<alice@local.test> to=<grey@remote.test>", "DSN for Q1"} {
		if !strings.Contains(log, want) {
			t.Errorf("mail log lacks %q:\n%s", want, log)
		}
	}
}

func TestDelayWarningAndExpiry(t *testing.T) {
	f := newFixture(t)
	f.tr.replies["slow@remote.test"] = outbound.Result{Code: 421, Enhanced: "4.4.2", Text: "Try later", Remote: "mx.remote.test[192.0.2.1]"}
	f.enqueue(t, "W1", "alice@local.test", store.OutboundRecipient{Address: "slow@remote.test"})
	f.runOnce(t)
	if len(f.inbox(t)) != 0 {
		t.Fatal("a warning before WarnAfter")
	}
	f.now = f.now.Add(4*time.Hour + time.Minute)
	f.runOnce(t)
	inbox := f.inbox(t)
	if len(inbox) != 1 {
		t.Fatalf("%d messages after 4h, want one delay warning", len(inbox))
	}
	subj, fields, returned, _ := dsnParts(t, inbox[0])
	if subj != "Delayed Mail (still being retried)" || fields[1]["Action"] != "delayed" || fields[1]["Status"] != "4.4.2" ||
		fields[1]["Will-Retry-Until"] == "" || returned != "text/rfc822-headers" {
		t.Fatalf("warning: %q %v %q", subj, fields, returned)
	}
	f.now = f.now.Add(2 * time.Hour)
	f.runOnce(t)
	if len(f.inbox(t)) != 1 {
		t.Fatal("a second delay warning")
	}
	f.now = f.now.Add(5 * 24 * time.Hour)
	f.runOnce(t)
	inbox = f.inbox(t)
	if len(inbox) != 2 {
		t.Fatalf("%d messages after expiry", len(inbox))
	}
	subj, fields, _, _ = dsnParts(t, inbox[1])
	if subj != "Undelivered Mail Returned to Sender" || fields[1]["Action"] != "failed" || fields[1]["Status"] != "4.4.7" ||
		!strings.Contains(fields[1]["Diagnostic-Code"], "421 4.4.2 Try later") {
		t.Fatalf("expiry bounce: %q %v", subj, fields)
	}
	if _, err := f.st.GetQueued(context.Background(), "W1"); err == nil {
		t.Fatal("expired entry still queued")
	}
}

func TestNoBounce(t *testing.T) {
	f := newFixture(t)
	f.tr.replies["nobody@remote.test"] = perm(550, "5.1.1", "No such user")
	// A null sender never gets a DSN (no loops), nor does NOTIFY=NEVER, nor an unknown local sender.
	f.enqueue(t, "N1", "", store.OutboundRecipient{Address: "nobody@remote.test"})
	f.enqueue(t, "N2", "alice@local.test", store.OutboundRecipient{Address: "nobody@remote.test", Notify: []string{"NEVER"}})
	f.enqueue(t, "N3", "ghost@local.test", store.OutboundRecipient{Address: "nobody@remote.test"})
	f.runOnce(t)
	if n := len(f.inbox(t)); n != 0 {
		t.Fatalf("%d DSNs", n)
	}
	if q, _ := f.st.ListQueue(context.Background()); len(q) != 0 {
		t.Fatalf("queue left %+v", q)
	}
	if !strings.Contains(f.log.String(), "no DSN for the null sender") {
		t.Errorf("log: %s", f.log.String())
	}
}

func TestRemoteSenderAndSuccess(t *testing.T) {
	f := newFixture(t)
	f.tr.replies["nobody@remote.test"] = perm(550, "5.1.1", "No such user")
	f.tr.replies["old@remote.test"] = outbound.Result{Code: 250, Enhanced: "2.0.0", Text: "Ok", Remote: "old.remote.test[192.0.2.2]"} // no DSN support
	// A remote sender's bounce is queued from the null sender.
	f.enqueue(t, "R1", "carol@elsewhere.test", store.OutboundRecipient{Address: "nobody@remote.test"})
	// NOTIFY=SUCCESS to a server without DSN: we report "relayed".
	f.enqueue(t, "R2", "alice@local.test", store.OutboundRecipient{Address: "old@remote.test", Notify: []string{"SUCCESS"}})
	f.runOnce(t)
	q, _ := f.st.ListQueue(context.Background())
	if len(q) != 1 || q[0].From != "" || q[0].Recipients[0].Address != "carol@elsewhere.test" {
		t.Fatalf("queue %+v, want the DSN to carol", q)
	}
	inbox := f.inbox(t)
	if len(inbox) != 1 {
		t.Fatalf("alice has %d messages", len(inbox))
	}
	subj, fields, _, _ := dsnParts(t, inbox[0])
	if subj != "Successful Mail Delivery Report" || fields[1]["Action"] != "relayed" {
		t.Fatalf("success DSN %q %v", subj, fields)
	}
	// The DSN to carol bounces too: it has a null sender, so nothing more is generated.
	f.tr.replies["carol@elsewhere.test"] = perm(550, "5.1.1", "No such user")
	f.runOnce(t)
	if q, _ := f.st.ListQueue(context.Background()); len(q) != 0 {
		t.Fatalf("queue after the DSN bounced: %+v", q)
	}
}

func TestRunAndShutdown(t *testing.T) {
	f := newFixture(t)
	f.q.opts.Now = time.Now
	f.now = time.Now()
	f.enqueue(t, "S1", "alice@local.test", store.OutboundRecipient{Address: "bob@remote.test"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.q.Run(ctx); close(done) }()
	waitFor(t, func() bool { q, _ := f.st.ListQueue(ctx); return len(q) == 0 })
	// A delivery in flight at shutdown is cut short and its entry released, due at once.
	f.tr.block = make(chan struct{})
	f.enqueue(t, "S2", "alice@local.test", store.OutboundRecipient{Address: "bob@remote.test"})
	f.q.Kick()
	waitFor(t, func() bool { q, _ := f.st.GetQueued(ctx, "S2"); return !q.LeaseUntil.IsZero() })
	cancel()
	<-done
	q, err := f.st.GetQueued(context.Background(), "S2")
	if err != nil || !q.LeaseUntil.IsZero() || q.Attempts != 0 || q.Recipients[0].Status != "queued" {
		t.Fatalf("after shutdown: %+v, %v", q, err)
	}
}

// waitFor polls cond until it holds; it fails only after a generous deadline (no timing is asserted).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
