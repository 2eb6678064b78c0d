package smtpserver

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/mail"
)

// stageProbe refuses by rule and records the stage calls it saw.
type stageProbe struct {
	mu        sync.Mutex
	calls     []string
	connect   filter.Verdict
	tempRcpt  string // recipient that gets a greylist-style 451
	badFrom   string // sender refused at MAIL
	limitAuth bool   // MAIL of an authenticated user gets a rate-limit 451
}

func (p *stageProbe) Name() string { return "probe" }

func (p *stageProbe) record(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, s)
}

func (p *stageProbe) Connect(_ context.Context, t *filter.Txn) filter.Verdict {
	p.record("connect " + t.Conn.IP.String())
	return p.connect
}

func (p *stageProbe) Helo(_ context.Context, t *filter.Txn) filter.Verdict {
	p.record("helo " + t.Conn.Helo)
	return filter.Verdict{}
}

func (p *stageProbe) Mail(_ context.Context, t *filter.Txn) filter.Verdict {
	p.record(fmt.Sprintf("mail %s id=%v tls=%v auth=%q", t.From, t.QueueID != "", t.Conn.TLS, t.Conn.AuthUser))
	p.mu.Lock()
	limit := p.limitAuth
	p.mu.Unlock()
	if limit && t.Conn.AuthUser != "" {
		return filter.Verdict{Action: filter.Tempfail, Code: 451, Enhanced: "4.7.1", Message: "Rate limit exceeded"}
	}
	if t.From.Key() == p.badFrom {
		return filter.Verdict{Action: filter.Reject, Code: 553, Enhanced: "5.7.1", Message: "Sender refused"}
	}
	return filter.Verdict{}
}

func (p *stageProbe) Rcpt(_ context.Context, t *filter.Txn, rcpt mail.Address) filter.Verdict {
	p.record("rcpt " + rcpt.Key())
	if rcpt.Key() == p.tempRcpt {
		return filter.Verdict{Action: filter.Tempfail, Message: "Greylisted, try again later"}
	}
	return filter.Verdict{}
}

func (p *stageProbe) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

func TestFilterStages(t *testing.T) {
	probe := &stageProbe{tempRcpt: "bob@example.org", badFrom: "bad@remote.net"}
	f := newFixture(t, ModeMX, func(o *Options) {
		o.Filters = filter.New(filter.Options{Checks: []filter.Check{probe}})
	})
	c := f.dial(t)
	c.expect("220 ")
	c.send("EHLO client.example.net")
	c.expect("250 ")
	c.send("MAIL FROM:<bad@remote.net>")
	c.expect("553 5.7.1 Sender refused")
	c.send("MAIL FROM:<s@remote.net>")
	c.expect("250 ")
	c.send("RCPT TO:<bob@example.org>")
	c.expect("451 4.7.1 Greylisted")
	c.send("RCPT TO:<alice@example.org>")
	c.expect("250 ")
	c.send("DATA")
	c.expect("354 ")
	c.send("Subject: x\r\n\r\nhi\r\n.")
	c.expect("250 ")
	if f.del.count() != 1 || len(f.del.envs[0].Recipients) != 1 {
		t.Fatalf("delivered: %+v", f.del.envs)
	}
	c.starttls()
	c.send("EHLO again.example.net")
	c.expect("250 ")
	c.send("MAIL FROM:<s@remote.net>")
	c.expect("250 ")
	want := []string{"connect 127.0.0.1", "helo client.example.net", `mail bad@remote.net id=true tls=false auth=""`,
		`mail s@remote.net id=true tls=false auth=""`, "rcpt bob@example.org", "rcpt alice@example.org",
		"helo again.example.net", `mail s@remote.net id=true tls=true auth=""`}
	if got := probe.seen(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stage calls:\n got %q\nwant %q", got, want)
	}
}

// A refusal at connect is answered at every RCPT (smtpd_delay_reject); the access table's OK waives it, and so
// does authentication — but an authenticated user's refusals at MAIL and RCPT (rate limits) stand.
func TestFilterConnectRefusalDelayed(t *testing.T) {
	probe := &stageProbe{connect: filter.Verdict{Action: filter.Reject, Code: 554, Enhanced: "5.7.1",
		Message: "Service unavailable; client [127.0.0.1] blocked using bl.example", Reason: "dnsbl"}}
	f := newFixture(t, ModeMX, func(o *Options) {
		o.Filters = filter.New(filter.Options{Checks: []filter.Check{probe}})
	})
	c := f.dial(t)
	c.expect("220 ")
	c.send("EHLO x")
	c.expect("250 ")
	c.send("MAIL FROM:<s@remote.net>")
	c.expect("250 ")
	c.send("RCPT TO:<alice@example.org>")
	c.expect("554 5.7.1 Service unavailable; client .127.0.0.1. blocked using bl.example")
	c.send("RCPT TO:<bob@example.org>")
	c.expect("554 5.7.1 ")
	c.send("DATA")
	c.expect("503 ")

	f.dir.mu.Lock()
	f.dir.access["127.0.0.1"] = "OK"
	f.dir.mu.Unlock()
	c = f.dial(t)
	c.expect("220 ")
	c.send("MAIL FROM:<s@remote.net>")
	c.expect("250 ")
	c.send("RCPT TO:<alice@example.org>")
	c.expect("250 ")

	f.dir.mu.Lock()
	delete(f.dir.access, "127.0.0.1")
	f.dir.mu.Unlock()
	c = f.dial(t)
	c.expect("220 ")
	c.send("EHLO x")
	c.expect("250 ")
	c.starttls()
	c.send("AUTH PLAIN " + plain("alice@example.org", "secret"))
	c.expect("235 ")
	c.send("MAIL FROM:<alice@example.org>")
	c.expect("250 ")
	c.send("RCPT TO:<friend@elsewhere.net>")
	c.expect("250 ")
	c.send("RSET")
	c.expect("250 ")
	probe.mu.Lock()
	probe.limitAuth = true
	probe.mu.Unlock()
	c.send("MAIL FROM:<alice@example.org>")
	c.expect("451 4.7.1 Rate limit exceeded")
}
