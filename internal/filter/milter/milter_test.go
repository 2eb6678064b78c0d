package milter

import (
	"context"
	"net"
	"net/netip"
	"net/textproto"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/engine/enginetest"
	"github.com/postern/postern/internal/mail"
)

// fakeMilter decides by the Subject (at end of headers) or by a recipient, and records what it saw.
type fakeMilter struct {
	rec     *record
	subject string
}

type record struct {
	mu    sync.Mutex // guards the fields below
	host  string
	helo  string
	from  string
	rcpts []string
	body  string
}

func (f *fakeMilter) Connect(host, family string, port uint16, addr net.IP, m *gomilter.Modifier) (gomilter.Response, error) {
	f.rec.mu.Lock()
	f.rec.host = host + " " + family + " " + addr.String()
	f.rec.mu.Unlock()
	return gomilter.RespContinue, nil
}

func (f *fakeMilter) Helo(name string, m *gomilter.Modifier) (gomilter.Response, error) {
	f.rec.mu.Lock()
	f.rec.helo = name
	f.rec.mu.Unlock()
	return gomilter.RespContinue, nil
}

func (f *fakeMilter) MailFrom(from string, m *gomilter.Modifier) (gomilter.Response, error) {
	f.rec.mu.Lock()
	f.rec.from = from
	f.rec.mu.Unlock()
	return gomilter.RespContinue, nil
}

func (f *fakeMilter) RcptTo(rcpt string, m *gomilter.Modifier) (gomilter.Response, error) {
	f.rec.mu.Lock()
	f.rec.rcpts = append(f.rec.rcpts, rcpt)
	f.rec.mu.Unlock()
	if strings.HasPrefix(rcpt, "nobody@") {
		return gomilter.NewResponseStr('y', "550 5.1.1 No such user here"), nil
	}
	return gomilter.RespContinue, nil
}

func (f *fakeMilter) Header(name, value string, m *gomilter.Modifier) (gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (f *fakeMilter) Headers(h textproto.MIMEHeader, m *gomilter.Modifier) (gomilter.Response, error) {
	f.subject = h.Get("Subject")
	switch f.subject {
	case "reject":
		return gomilter.RespReject, nil
	case "tempfail":
		return gomilter.RespTempFail, nil
	case "discard":
		return gomilter.RespDiscard, nil
	case "accept":
		return gomilter.RespAccept, nil
	case "reply":
		return gomilter.NewResponseStr('y', "554 5.7.0 Reject, id=123 - INFECTED: Eicar-Signature"), nil
	}
	return gomilter.RespContinue, nil
}

func (f *fakeMilter) BodyChunk(chunk []byte, m *gomilter.Modifier) (gomilter.Response, error) {
	f.rec.mu.Lock()
	f.rec.body += string(chunk)
	f.rec.mu.Unlock()
	return gomilter.RespContinue, nil
}

func (f *fakeMilter) Body(m *gomilter.Modifier) (gomilter.Response, error) {
	switch f.subject {
	case "modify":
		m.AddHeader("X-Virus-Scanned", "fake milter")
		m.InsertHeader(1, "X-Inserted", "yes\r\n\tfolded")
		m.ChangeHeader(1, "X-Not-There", "added") // no such field: added
		m.ChangeHeader(1, "Subject", "rewritten") // existing field: not supported
		m.ReplaceBody([]byte("new body\r\n"))     // not offered by us, ignored
		m.AddHeader("Bad Name", "x")
	case "quarantine":
		m.Quarantine("looks bad")
	}
	return gomilter.RespAccept, nil
}

func (f *fakeMilter) Abort(m *gomilter.Modifier) error { return nil }

func startFake(t *testing.T, network string) (string, *record) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "milter.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	rec := &record{}
	srv := &gomilter.Server{
		NewMilter: func() gomilter.Milter { return &fakeMilter{rec: rec} },
		Actions:   gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine,
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return network + ":" + ln.Addr().String(), rec
}

func message(subject string) *filter.Message {
	return enginetest.Message("From: a@example.org\r\nSubject: " + subject + "\r\n\r\nline one\r\nline two\r\n")
}

func txn(rcpts ...string) *filter.Txn {
	from, _ := mail.ParseAddress("alice@example.org")
	t := &filter.Txn{Conn: &filter.Conn{IP: netip.MustParseAddr("192.0.2.9"), Helo: "client.example.org"},
		QueueID: "Q7", From: from, Values: map[string]any{}}
	for _, r := range rcpts {
		a, _ := mail.ParseAddress(r)
		t.Recipients = append(t.Recipients, a)
	}
	return t
}

func TestVerdicts(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			addr, rec := startFake(t, network)
			c, err := New(Options{Address: addr, Hostname: "mx.example.net"})
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				subject string
				rcpts   []string
				want    filter.Action
				code    int
				junk    bool
			}{
				{"plain", nil, filter.Accept, 0, false},
				{"accept", nil, filter.Accept, 0, false},
				{"reject", nil, filter.Reject, 554, false},
				{"tempfail", nil, filter.Tempfail, 451, false},
				{"discard", nil, filter.Tag, 0, true},
				{"reply", nil, filter.Reject, 554, false},
				{"quarantine", nil, filter.Tag, 0, true},
				{"plain", []string{"bob@example.net", "nobody@example.net"}, filter.Reject, 550, false},
			} {
				rcpts := tc.rcpts
				if rcpts == nil {
					rcpts = []string{"bob@example.net"}
				}
				v := c.Data(context.Background(), txn(rcpts...), message(tc.subject))
				if v.Action != tc.want || v.Code != tc.code || v.Junk != tc.junk {
					t.Errorf("%s %v: verdict %+v", tc.subject, rcpts, v)
				}
				if tc.subject == "reply" && (v.Enhanced != "5.7.0" || v.Message != "Reject, id=123 - INFECTED: Eicar-Signature") {
					t.Errorf("reply verdict %+v", v)
				}
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if rec.host != "[192.0.2.9] tcp4 192.0.2.9" || rec.helo != "client.example.org" || rec.from != "alice@example.org" {
				t.Errorf("milter saw host %q helo %q from %q", rec.host, rec.helo, rec.from)
			}
			if !strings.Contains(rec.body, "line one\r\nline two\r\n") {
				t.Errorf("milter saw body %q", rec.body)
			}
		})
	}
}

func TestModifications(t *testing.T) {
	t.Parallel()
	addr, _ := startFake(t, "tcp")
	c, err := New(Options{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	v := c.Data(context.Background(), txn("bob@example.net"), message("modify"))
	want := []filter.Header{{Name: "X-Virus-Scanned", Value: "fake milter"}, {Name: "X-Inserted", Value: "yes folded"},
		{Name: "X-Not-There", Value: "added"}}
	if v.Action != filter.Tag || len(v.Headers) != len(want) {
		t.Fatalf("verdict %+v", v)
	}
	for i := range want {
		if v.Headers[i] != want[i] {
			t.Errorf("header %d = %+v, want %+v", i, v.Headers[i], want[i])
		}
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
	enginetest.TestFailures(t, func(addr, onError string) (filter.DataChecker, error) {
		host, port, _ := net.SplitHostPort(addr)
		return New(Options{Address: "inet:" + port + "@" + host, OnError: onError})
	}, func() *filter.Txn { return txn("bob@example.net") })
}

func TestReplyVerdict(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code          int
		text          string
		action        filter.Action
		enhanced, msg string
	}{
		{550, "5.7.1 Blocked", filter.Reject, "5.7.1", "Blocked"},
		{451, "4.7.1 Try later", filter.Tempfail, "4.7.1", "Try later"},
		{451, "5.7.1 class mismatch", filter.Tempfail, "", "5.7.1 class mismatch"},
		{550, "5.7.1 first\r\n550 5.7.1 second", filter.Reject, "5.7.1", "second"},
		{250, "ok", filter.Accept, "", ""},
	} {
		v := replyVerdict(tc.code, tc.text, "r")
		if v.Action != tc.action || v.Enhanced != tc.enhanced || v.Message != tc.msg {
			t.Errorf("replyVerdict(%d, %q) = %+v", tc.code, tc.text, v)
		}
	}
}

func FuzzReplyVerdict(f *testing.F) {
	f.Add(550, "5.7.1 Blocked")
	f.Fuzz(func(t *testing.T, code int, text string) {
		v := replyVerdict(code, text, "r")
		if strings.ContainsAny(v.Message, "\r\n") || len(v.Message) > 200 {
			t.Errorf("unsafe reply text %q", v.Message)
		}
	})
}
