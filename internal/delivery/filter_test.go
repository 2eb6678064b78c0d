package delivery

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/store"
)

// scorer scores every message by its Subject: "score N" adds N; it also records the size it saw.
type scorer struct{ sawSize int64 }

func (*scorer) Name() string { return "scorer" }

func (s *scorer) Data(_ context.Context, _ *filter.Txn, m *filter.Message) filter.Verdict {
	s.sawSize = m.Size
	r, err := m.Open()
	if err != nil {
		return filter.Verdict{Action: filter.Tempfail}
	}
	b, _ := io.ReadAll(r)
	r.Close()
	switch {
	case strings.Contains(string(b), "VIRUS"):
		return filter.Verdict{Action: filter.Reject, Message: "Virus found", Reason: "Eicar-Test"}
	case strings.Contains(m.Header.Get("Subject"), "spam"):
		return filter.Verdict{Action: filter.Tag, Score: 7, Symbol: "SPAMMY"}
	}
	return filter.Verdict{}
}

// classifier calls spam what user b gets with "bayes" in it.
type classifier struct{ bID int64 }

func (c classifier) Classify(_ context.Context, userID int64, m *filter.Message) (bool, float64, error) {
	r, _ := m.Open()
	defer r.Close()
	b, _ := io.ReadAll(r)
	return userID == c.bID && strings.Contains(string(b), "bayes"), 0.99, nil
}

func session(_ testing.TB, ch filter.Check) *filter.Session {
	p := filter.New(filter.Options{Checks: []filter.Check{ch}, AuthServID: "mx.example.org", JunkScore: 5,
		RejectScore: 15, SpamHeaders: true})
	fs, _ := p.Connect(context.Background(), filter.Conn{IP: netip.MustParseAddr("192.0.2.1"), Listener: "smtp"})
	fs.Mail(context.Background(), "Q", addr("s@remote.net"))
	return fs
}

func copies(t *testing.T, a *Agent, address, box string) []store.Message {
	t.Helper()
	st := a.opts.Store.(interface {
		GetUser(context.Context, string) (store.User, error)
		GetMailbox(context.Context, int64, string) (store.Mailbox, error)
		ListMessages(context.Context, int64) ([]store.Message, error)
	})
	ctx := context.Background()
	u, err := st.GetUser(ctx, address)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := st.GetMailbox(ctx, u.ID, box)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := st.ListMessages(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestDataStage(t *testing.T) {
	a, st := setup(t)
	a.opts.SpoolMemory = 64 // the larger messages below go through a spool file
	a.opts.SpoolDir = t.TempDir()
	a.opts.Classifier = classifier{bID: mustUser(t, st, "b@example.org").ID}
	ctx := context.Background()
	env := func(id string, to ...string) *mail.Envelope {
		e := &mail.Envelope{QueueID: id, From: addr("s@remote.net")}
		for _, r := range to {
			e.Recipients = append(e.Recipients, mail.Recipient{Addr: addr(r)})
		}
		return e
	}
	forged := "Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=s@remote.net\r\n" +
		"Authentication-Results: other.example; dkim=pass header.d=remote.net\r\n"

	sc := &scorer{}
	body := forged + "Subject: ham\r\n\r\nhello\r\n"
	if err := a.Deliver(ctx, env("Q1", "a@example.org"), strings.NewReader(body), session(t, sc)); err != nil {
		t.Fatal(err)
	}
	if sc.sawSize != int64(len(body)) {
		t.Errorf("check saw %d bytes, want %d", sc.sawSize, len(body))
	}
	got := read(t, st, copies(t, a, "a@example.org", "INBOX")[0].BlobID)
	if strings.Contains(got, "mx.example.org; spf=pass") || !strings.Contains(got, "other.example; dkim=pass") {
		t.Errorf("forged Authentication-Results not removed (or a foreign one removed):\n%s", got)
	}

	// Junk by score, with X-Spam headers, for every local recipient.
	body = "Subject: spam offer\r\n\r\nbuy\r\n"
	if err := a.Deliver(ctx, env("Q2", "a@example.org", "b@example.org"), strings.NewReader(body), session(t, sc)); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"a@example.org", "b@example.org"} {
		j := copies(t, a, u, "Junk")
		if len(j) != 1 || len(j[0].Flags) != 1 || j[0].Flags[0] != "$Junk" {
			t.Fatalf("%s Junk: %+v", u, j)
		}
		if got := read(t, st, j[0].BlobID); !strings.HasPrefix(got, "Return-Path: <s@remote.net>\r\nX-Spam-Status: Yes, score=7.0") {
			t.Errorf("stored spam: %q", got)
		}
	}

	// The per-user classifier: only b's copy goes into Junk.
	body = "Subject: hi\r\n\r\nbayes says\r\n"
	if err := a.Deliver(ctx, env("Q3", "a@example.org", "b@example.org"), strings.NewReader(body), session(t, sc)); err != nil {
		t.Fatal(err)
	}
	if len(copies(t, a, "a@example.org", "INBOX")) != 2 || len(copies(t, a, "b@example.org", "Junk")) != 2 {
		t.Errorf("classifier filing wrong")
	}

	// Spam follows the \Junk mailbox when the user renamed it.
	if err := st.RenameMailbox(ctx, mustUser(t, st, "a@example.org").ID, "Junk", "Spam"); err != nil {
		t.Fatal(err)
	}
	if err := a.Deliver(ctx, env("Q3b", "a@example.org"), strings.NewReader("Subject: more spam\r\n\r\nx\r\n"), session(t, sc)); err != nil {
		t.Fatal(err)
	}
	if n := len(copies(t, a, "a@example.org", "Spam")); n != 2 {
		t.Errorf("renamed Junk has %d messages, want 2", n)
	}

	// A refusal at DATA maps to the checks' reply and stores nothing.
	err := a.Deliver(ctx, env("Q4", "a@example.org"), strings.NewReader("Subject: x\r\n\r\nVIRUS\r\n"), session(t, sc))
	var de *Error
	if !errors.As(err, &de) || de.Code != 554 || de.Message != "Virus found" {
		t.Fatalf("virus: %v", err)
	}
	if n := len(copies(t, a, "a@example.org", "INBOX")); n != 2 {
		t.Errorf("refused message stored (%d)", n)
	}
}

func TestStripUnparseableHeader(t *testing.T) {
	a, st := setup(t)
	ctx := context.Background()
	// A body with no header block at all after the Received line, and a forged field first.
	body := "Received: from x\r\nAuthentication-Results: mx.example.org;\r\n spf=pass\r\nthis is no header\r\n\r\nAuthentication-Results: mx.example.org; in the body\r\n"
	e := &mail.Envelope{QueueID: "Q5", From: addr("s@remote.net"), Recipients: []mail.Recipient{{Addr: addr("a@example.org")}}}
	if err := a.Deliver(ctx, e, strings.NewReader(body), session(t, &scorer{})); err != nil {
		t.Fatal(err)
	}
	got := read(t, st, copies(t, a, "a@example.org", "INBOX")[0].BlobID)
	want := "Return-Path: <s@remote.net>\r\nReceived: from x\r\nthis is no header\r\n\r\nAuthentication-Results: mx.example.org; in the body\r\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// FuzzStripAuthResults: the line-wise fallback never panics, never grows the message, and leaves a message
// without Authentication-Results as it was.
func FuzzStripAuthResults(f *testing.F) {
	f.Add("Received: x\r\nAuthentication-Results: mx.example.org; spf=pass\r\nno header\r\n\r\nbody\r\n")
	f.Add("Subject: a\r\n folded\r\n\tmore\r\n\r\n")
	f.Fuzz(func(t *testing.T, msg string) {
		r := stripAuthResults(strings.NewReader(msg), "mx.example.org")
		out, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(out) > len(msg) {
			t.Fatalf("grew: %q -> %q", msg, out)
		}
		if !strings.Contains(strings.ToLower(msg), "authentication-results") && string(out) != msg {
			t.Fatalf("changed: %q -> %q", msg, out)
		}
	})
}

// BenchmarkDeliver compares the plain path with the filter path (spool, DATA stage with one check, header
// rewrite) for a 10 KiB message to one local user; both include the durable commit.
func BenchmarkDeliver(b *testing.B) {
	msg := "Subject: bench\r\nFrom: s@remote.net\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 160)
	for _, filtered := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "filtered"}[filtered], func(b *testing.B) {
			a, _ := setup(b)
			ctx := context.Background()
			b.SetBytes(int64(len(msg)))
			for i := 0; b.Loop(); i++ {
				e := &mail.Envelope{QueueID: "B", From: addr("s@remote.net"), Recipients: []mail.Recipient{{Addr: addr("a@example.org")}}}
				var fs *filter.Session
				if filtered {
					fs = session(nil, &scorer{})
				}
				if err := a.Deliver(ctx, e, strings.NewReader(msg), fs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
