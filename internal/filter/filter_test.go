package filter

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"

	"github.com/postern/postern/internal/mail"
)

// fakeCheck answers each stage with a fixed verdict and records the calls.
type fakeCheck struct {
	name   string
	mail   Verdict
	rcpt   func(mail.Address) Verdict
	data   Verdict
	calls  []string
	panic  bool
	result bool // add an SPF pass result at DATA
}

func (f *fakeCheck) Name() string { return f.name }
func (f *fakeCheck) Mail(_ context.Context, t *Txn) Verdict {
	f.calls = append(f.calls, "mail:"+t.From.String())
	if f.panic {
		panic("boom")
	}
	return f.mail
}
func (f *fakeCheck) Rcpt(_ context.Context, _ *Txn, r mail.Address) Verdict {
	f.calls = append(f.calls, "rcpt:"+r.String())
	if f.rcpt != nil {
		return f.rcpt(r)
	}
	return Verdict{}
}
func (f *fakeCheck) Data(_ context.Context, t *Txn, m *Message) Verdict {
	f.calls = append(f.calls, "data")
	if f.result {
		t.AddResult(&authres.SPFResult{Value: authres.ResultPass, From: t.From.String()})
	}
	return f.data
}

func addr(t *testing.T, s string) mail.Address {
	a, err := mail.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestPipelineCombinesVerdicts(t *testing.T) {
	ctx := context.Background()
	a := &fakeCheck{name: "a", mail: Verdict{Action: Tag, Score: 3, Symbol: "A_RULE"},
		rcpt: func(r mail.Address) Verdict {
			if r.Local == "nobody" {
				return Verdict{Action: Reject, Message: "no such"}
			}
			return Verdict{}
		}}
	b := &fakeCheck{name: "b", data: Verdict{Action: Tag, Score: 2.5, Symbol: "B_RULE", Headers: []Header{{"X-B", "1"}}}, result: true}
	var events []Event
	p := New(Options{Checks: []Check{a, b}, AuthServID: "mx.example.org", JunkScore: 5, RejectScore: 10, SpamHeaders: true,
		Log: func(e Event) { events = append(events, e) }})
	s, v := p.Connect(ctx, Conn{IP: netip.MustParseAddr("192.0.2.1"), Listener: "smtp"})
	if v.Action != Accept {
		t.Fatalf("connect: %+v", v)
	}
	if v := s.Mail(ctx, "Q1", addr(t, "s@example.net")); v.Action != Tag {
		t.Fatalf("mail: %+v", v)
	}
	if v := s.Rcpt(ctx, addr(t, "nobody@example.org")); v.Action != Reject {
		t.Fatalf("rcpt nobody: %+v", v)
	}
	if v := s.Rcpt(ctx, addr(t, "u@example.org")); v.Action != Accept {
		t.Fatalf("rcpt u: %+v", v)
	}
	if got := s.Txn().Recipients; len(got) != 1 || got[0].String() != "u@example.org" {
		t.Fatalf("recipients %v", got)
	}
	o := s.Data(ctx, &Message{})
	if o.Verdict.Action != Tag || !o.Junk || o.Score != 5.5 {
		t.Fatalf("outcome %+v", o)
	}
	var hs []string
	for _, h := range o.Headers {
		hs = append(hs, h.Name+": "+h.Value)
	}
	want := []string{"Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=s@example.net",
		"X-Spam-Status: Yes, score=5.5 required=5.0 tests=A_RULE=3.0,B_RULE=2.5", "X-Spam-Score: 5.5", "X-B: 1"}
	if strings.Join(hs, "\n") != strings.Join(want, "\n") {
		t.Fatalf("headers:\n%s\nwant:\n%s", strings.Join(hs, "\n"), strings.Join(want, "\n"))
	}
	if len(events) != 3 || events[1].Verdict.Action != Reject || events[1].Check != "a" || events[0].QueueID != "Q1" {
		t.Fatalf("events %+v", events)
	}
	// A new transaction starts clean.
	s.Reset()
	s.Mail(ctx, "Q2", addr(t, "s@example.net"))
	if sc := s.Txn().Score; sc != 3 {
		t.Fatalf("score after reset = %v", sc)
	}
}

func TestPipelineRejectScoreAndStops(t *testing.T) {
	ctx := context.Background()
	a := &fakeCheck{name: "a", data: Verdict{Action: Tag, Score: 20, Symbol: "GTUBE"}}
	after := &fakeCheck{name: "after"}
	p := New(Options{Checks: []Check{a, after}, JunkScore: 5, RejectScore: 15})
	s, _ := p.Connect(ctx, Conn{})
	s.Mail(ctx, "Q", mail.Address{})
	o := s.Data(ctx, &Message{})
	if o.Verdict.Action != Reject {
		t.Fatalf("outcome %+v", o)
	}
	if code, enh, _ := o.Verdict.Reply("data"); code != 554 || enh != "5.7.1" {
		t.Fatalf("reply %d %s", code, enh)
	}
	// A Tempfail at MAIL stops the stage: later checks are not asked.
	a.mail = Verdict{Action: Tempfail}
	after.calls = nil
	if v := s.Mail(ctx, "Q", mail.Address{}); v.Action != Tempfail {
		t.Fatalf("mail %+v", v)
	}
	if len(after.calls) != 0 {
		t.Fatalf("check after a tempfail was called: %v", after.calls)
	}
	if code, enh, _ := (Verdict{Action: Tempfail}).Reply("rcpt"); code != 451 || enh != "4.7.1" {
		t.Fatalf("tempfail reply %d %s", code, enh)
	}
}

func TestPanickingCheckTempfails(t *testing.T) {
	ctx := context.Background()
	p := New(Options{Checks: []Check{&fakeCheck{name: "bad", panic: true}}})
	s, _ := p.Connect(ctx, Conn{})
	if v := s.Mail(ctx, "Q", mail.Address{}); v.Action != Tempfail {
		t.Fatalf("verdict %+v", v)
	}
}

func TestWriteMessageStripsForgedResults(t *testing.T) {
	in := "Received: from x\r\n" +
		"Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=forged@example.com\r\n" +
		"Authentication-Results: other.example; dkim=pass header.d=example.com\r\n" +
		"Authentication-Results: MX.EXAMPLE.ORG;\r\n dkim=pass header.d=bank.example\r\n" +
		"Subject: hi\r\n\r\nbody\r\nAuthentication-Results: mx.example.org; in the body stays\r\n"
	o := Outcome{StripAuthResults: "mx.example.org",
		Headers: []Header{{"Authentication-Results", "mx.example.org; spf=fail smtp.mailfrom=s@example.net"}}}
	var out bytes.Buffer
	n, err := WriteMessage(&out, strings.NewReader(in), "Return-Path: <s@example.net>\r\n", o)
	if err != nil {
		t.Fatal(err)
	}
	want := "Return-Path: <s@example.net>\r\n" +
		"Authentication-Results: mx.example.org; spf=fail smtp.mailfrom=s@example.net\r\n" +
		"Received: from x\r\n" +
		"Authentication-Results: other.example; dkim=pass header.d=example.com\r\n" +
		"Subject: hi\r\n\r\nbody\r\nAuthentication-Results: mx.example.org; in the body stays\r\n"
	if out.String() != want || n != int64(len(want)) {
		t.Fatalf("got (%d):\n%q\nwant (%d):\n%q", n, out.String(), len(want), want)
	}
}

func TestFoldValue(t *testing.T) {
	v := strings.Repeat("word ", 40)
	f := foldValue("X-Spam-Status", strings.TrimSpace(v))
	for _, line := range strings.Split(f, "\r\n") {
		if len(line) > 78 {
			t.Fatalf("line too long: %q", line)
		}
	}
	if strings.ReplaceAll(f, "\r\n\t", " ") != strings.TrimSpace(v) {
		t.Fatalf("folding changed the value: %q", f)
	}
}

func TestFoldValueKeepsQuotedStrings(t *testing.T) {
	v := "mx.example.org; spf=pass smtp.mailfrom=someone@example.net; dkim=pass header.d=a.test; dmarc=pass " +
		`reason="dkim a.test aligned with \"the\" From domain" header.from=a.test`
	f := foldValue("Authentication-Results", v)
	if !strings.Contains(f, `reason="dkim a.test aligned with \"the\" From domain"`) {
		t.Fatalf("folded inside the quoted string: %q", f)
	}
	if strings.ReplaceAll(f, "\r\n\t", " ") != v {
		t.Fatalf("folding changed the value: %q", f)
	}
}

func TestMessageMemo(t *testing.T) {
	var m Message
	calls := 0
	compute := func() (any, error) {
		calls++
		if calls == 1 {
			return nil, errors.New("transient")
		}
		return calls, nil
	}
	if _, err := m.Memo("k", compute); err == nil {
		t.Fatal("error not returned")
	}
	for range 3 {
		if v, err := m.Memo("k", compute); err != nil || v.(int) != 2 {
			t.Fatalf("Memo = %v, %v", v, err)
		}
	}
	if calls != 2 {
		t.Fatalf("computed %d times, want 2 (errors are not kept)", calls)
	}
}
