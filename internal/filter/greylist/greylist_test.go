package greylist

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/internal/memkv"
	"github.com/postern/postern/internal/mail"
)

func addr(s string) mail.Address { a, _ := mail.ParseAddress(s); return a }

func TestGreylist(t *testing.T) {
	kv := &memkv.KV{}
	now := time.Unix(1_700_000_000, 0)
	c, err := New(Options{KV: kv, Delay: 5 * time.Minute, WhitelistAfter: 2, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	try := func(ip, from, to string) filter.Verdict {
		txn := &filter.Txn{Conn: &filter.Conn{IP: netip.MustParseAddr(ip)}, From: addr(from), Values: map[string]any{}}
		return c.Rcpt(context.Background(), txn, addr(to))
	}
	v := try("192.0.2.10", "a@remote.net", "u@example.org")
	if v.Action != filter.Tempfail || v.Code != 451 || v.Enhanced != "4.7.1" || v.Message != "Greylisted, please try again in 300 seconds" {
		t.Fatalf("first sight: %+v", v)
	}
	now = now.Add(time.Minute)
	if v := try("192.0.2.10", "a@remote.net", "u@example.org"); v.Action != filter.Tempfail || v.Message != "Greylisted, please try again in 240 seconds" {
		t.Fatalf("early retry: %+v", v)
	}
	now = now.Add(5 * time.Minute)
	// A retry from another server of the same /24 passes; the case of the addresses does not matter.
	if v := try("192.0.2.77", "A@Remote.net", "u@example.org"); v.Action != filter.Tag || v.Headers[0].Value != "delayed 360 seconds by Postern" {
		t.Fatalf("retry after the delay: %+v", v)
	}
	if v := try("192.0.2.10", "a@remote.net", "u@example.org"); v.Action != filter.Accept {
		t.Fatalf("known triplet: %+v", v)
	}
	if v := try("198.51.100.1", "a@remote.net", "u@example.org"); v.Action != filter.Tempfail {
		t.Fatalf("other network: %+v", v)
	}
	// A second passed triplet whitelists the network: new triplets pass at once.
	try("192.0.2.10", "b@remote.net", "u@example.org")
	now = now.Add(10 * time.Minute)
	try("192.0.2.10", "b@remote.net", "u@example.org")
	if v := try("192.0.2.10", "new@remote.net", "u@example.org"); v.Action != filter.Accept {
		t.Fatalf("whitelisted network: %+v", v)
	}
	// The retry window runs out: a first-seen triplet that never came back starts over.
	try("2001:db8::1", "<>", "u@example.org")
	now = now.Add(49 * time.Hour)
	if v := try("2001:db8::2", "", "u@example.org"); v.Action != filter.Tempfail {
		t.Fatalf("expired wait: %+v", v)
	}
	// Authenticated clients and store failures pass.
	txn := &filter.Txn{Conn: &filter.Conn{IP: netip.MustParseAddr("203.0.113.1"), AuthUser: "u@example.org"}, Values: map[string]any{}}
	if v := c.Rcpt(context.Background(), txn, addr("x@remote.net")); v.Action != filter.Accept {
		t.Fatalf("authenticated: %+v", v)
	}
	kv.Fail(true)
	if v := try("203.0.113.1", "a@remote.net", "u@example.org"); v.Action != filter.Accept {
		t.Fatalf("store failure: %+v", v)
	}
}

func TestNetwork(t *testing.T) {
	for ip, want := range map[string]string{"192.0.2.77": "192.0.2.0/24", "::ffff:192.0.2.1": "192.0.2.0/24", "2001:db8:1:2:3::9": "2001:db8:1:2::/64"} {
		if got := Network(netip.MustParseAddr(ip)).String(); got != want {
			t.Errorf("%s: %s", ip, got)
		}
	}
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte("w 1700000000"))
	f.Add([]byte("p -1"))
	f.Fuzz(func(t *testing.T, v []byte) {
		state, _, ok := parseState(v)
		if ok && state != v[0] {
			t.Fatalf("%q: state %q", v, state)
		}
	})
}

// TestTrustedSkipped: a client the access table trusts is not greylisted and leaves no triplet behind.
func TestTrustedSkipped(t *testing.T) {
	kv := &memkv.KV{}
	c, err := New(Options{KV: kv})
	if err != nil {
		t.Fatal(err)
	}
	txn := &filter.Txn{Conn: &filter.Conn{IP: netip.MustParseAddr("192.0.2.10"), Trusted: true}, From: addr("a@remote.net"),
		Values: map[string]any{}}
	if v := c.Rcpt(context.Background(), txn, addr("u@example.org")); v.Action != filter.Accept || v.Reason != "" {
		t.Errorf("trusted client: %+v", v)
	}
	if kv.Len() != 0 {
		t.Errorf("%d keys stored for a trusted client", kv.Len())
	}
}
