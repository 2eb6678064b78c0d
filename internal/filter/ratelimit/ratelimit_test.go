package ratelimit

import (
	"context"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/internal/memkv"
	"github.com/postern/postern/internal/mail"
)

func addr(s string) mail.Address { a, _ := mail.ParseAddress(s); return a }

func txn(ip, from, user string) *filter.Txn {
	return &filter.Txn{Conn: &filter.Conn{IP: netip.MustParseAddr(ip), AuthUser: user}, From: addr(from), Values: map[string]any{}}
}

func TestHourlyLimits(t *testing.T) {
	now := time.Unix(1_700_000_000, 0).Truncate(time.Hour)
	c, err := New(Options{PerIP: 3, PerSender: 4, PerUser: 2, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 {
		if v := c.Mail(ctx, txn("192.0.2.1", "a@remote.net", "")); v.Action != filter.Accept {
			t.Fatalf("message %d: %+v", i, v)
		}
	}
	v := c.Mail(ctx, txn("192.0.2.1", "b@remote.net", ""))
	if v.Action != filter.Tempfail || v.Code != 451 || v.Enhanced != "4.7.1" {
		t.Fatalf("over the IP limit: %+v", v)
	}
	// Another IP, same sender: the sender has 3 of 4.
	if v := c.Mail(ctx, txn("192.0.2.2", "a@remote.net", "")); v.Action != filter.Accept {
		t.Fatalf("sender's 4th: %+v", v)
	}
	if v := c.Mail(ctx, txn("192.0.2.3", "A@remote.net", "")); v.Action != filter.Tempfail {
		t.Fatalf("sender's 5th: %+v", v)
	}
	// IPv6 clients count per /64.
	c.Mail(ctx, txn("2001:db8::1", "", ""))
	c.Mail(ctx, txn("2001:db8::2", "", ""))
	c.Mail(ctx, txn("2001:db8::3", "", ""))
	if v := c.Mail(ctx, txn("2001:db8::4", "", "")); v.Action != filter.Tempfail {
		t.Fatalf("IPv6 /64: %+v", v)
	}
	// Authenticated user.
	c.Mail(ctx, txn("198.51.100.1", "", "u@example.org"))
	c.Mail(ctx, txn("198.51.100.2", "", "u@example.org"))
	if v := c.Mail(ctx, txn("198.51.100.3", "", "U@example.org")); v.Action != filter.Tempfail {
		t.Fatalf("user limit: %+v", v)
	}
	// Sliding window: half an hour into the next hour, half of the 3 still count: 1.5 and 2.5 pass, 3.5 does not.
	now = now.Add(90 * time.Minute)
	for range 2 {
		if v := c.Mail(ctx, txn("192.0.2.1", "", "")); v.Action != filter.Accept {
			t.Fatalf("next window: %+v", v)
		}
	}
	if v := c.Mail(ctx, txn("192.0.2.1", "", "")); v.Action != filter.Tempfail {
		t.Fatalf("sliding window 1.5+1 then: %+v", v)
	}
	now = now.Add(3 * time.Hour)
	if v := c.Mail(ctx, txn("192.0.2.1", "", "")); v.Action != filter.Accept {
		t.Fatalf("long after: %+v", v)
	}
	c.mu.Lock()
	n := len(c.counters)
	c.mu.Unlock()
	if n != 1 {
		t.Errorf("idle counters not swept: %d left", n)
	}
}

func TestDomainDailyCap(t *testing.T) {
	kv := &memkv.KV{}
	now := time.Date(2026, 11, 23, 23, 0, 0, 0, time.UTC)
	c, err := New(Options{DomainDaily: 2, DomainCaps: map[string]int{"Big.example": 0}, KV: kv, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, want := range []filter.Action{filter.Accept, filter.Accept, filter.Tempfail} {
		if v := c.Rcpt(ctx, txn("192.0.2.1", "", "u"+strconv.Itoa(i)+"@example.org"), addr("x@remote.net")); v.Action != want {
			t.Fatalf("recipient %d: %+v", i, v)
		}
	}
	if v, _ := kv.Value("ratelimit:day:example.org:2026-11-23"); v != "3" {
		t.Errorf("counter: %q", v)
	}
	if v := c.Rcpt(ctx, txn("192.0.2.1", "", "u@big.example"), addr("x@remote.net")); v.Action != filter.Accept {
		t.Errorf("uncapped domain: %+v", v)
	}
	if v := c.Rcpt(ctx, txn("192.0.2.1", "", ""), addr("x@example.org")); v.Action != filter.Accept {
		t.Errorf("unauthenticated: %+v", v)
	}
	now = now.Add(2 * time.Hour) // the next UTC day
	if v := c.Rcpt(ctx, txn("192.0.2.1", "", "u@example.org"), addr("x@remote.net")); v.Action != filter.Accept {
		t.Errorf("next day: %+v", v)
	}
	if _, err := New(Options{DomainDaily: 1}); err == nil {
		t.Error("daily cap without KV accepted")
	}
}

// TestTrustedSkipped: a client the access table trusts is neither limited nor counted.
func TestTrustedSkipped(t *testing.T) {
	kv := &memkv.KV{}
	c, err := New(Options{PerIP: 1, PerUser: 1, DomainDaily: 1, KV: kv})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 {
		tx := txn("192.0.2.1", "a@remote.net", "u@example.org")
		tx.Conn.Trusted = true
		if v := c.Mail(ctx, tx); v.Action != filter.Accept {
			t.Fatalf("trusted MAIL %d: %+v", i, v)
		}
		if v := c.Rcpt(ctx, tx, addr("x@remote.net")); v.Action != filter.Accept {
			t.Fatalf("trusted RCPT %d: %+v", i, v)
		}
	}
	if kv.Len() != 0 {
		t.Errorf("%d counters stored for a trusted client", kv.Len())
	}
	// Not counted: the same IP untrusted still has its whole hourly allowance.
	if v := c.Mail(ctx, txn("192.0.2.1", "a@remote.net", "")); v.Action != filter.Accept {
		t.Errorf("first untrusted MAIL: %+v", v)
	}
}
