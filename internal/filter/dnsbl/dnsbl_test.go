package dnsbl

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/filter"
)

func TestQueryName(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.99", "99.2.0.192.bl.example"},        // RFC 5782 2.1
		{"::ffff:192.0.2.99", "99.2.0.192.bl.example"}, // mapped: asked as IPv4
		{"2001:db8:1:2:3:4:567:89ab", "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example"}, // 2.4
	} {
		if got := QueryName(netip.MustParseAddr(tc.ip), "bl.example"); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.ip, got, tc.want)
		}
	}
}

func TestParseZone(t *testing.T) {
	for in, want := range map[string]Zone{"zen.spamhaus.org": {"zen.spamhaus.org", 1}, "Bl.Example.=2.5": {"bl.example", 2.5}} {
		if got, err := ParseZone(in); err != nil || got != want {
			t.Errorf("%q: %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "=1", "bl.example=x", "bl.example=-1", "a b"} {
		if _, err := ParseZone(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseZone(f *testing.F) {
	f.Add("zen.spamhaus.org=2")
	f.Fuzz(func(t *testing.T, s string) {
		z, err := ParseZone(s)
		if err == nil && (z.Name == "" || z.Weight < 0) {
			t.Fatalf("%q: %+v", s, z)
		}
	})
}

func fakeDNS() *dns.Fake {
	a := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, x := range s {
			out = append(out, netip.MustParseAddr(x))
		}
		return out
	}
	return &dns.Fake{
		IP: map[string][]netip.Addr{
			"2.0.0.127.bl.example":      a("127.0.0.2"),
			"2.0.0.127.weak.example":    a("127.0.0.4"),
			"99.2.0.192.weak.example":   a("127.0.0.10"),
			"99.2.0.192.bl.example":     a("127.255.255.254"), // an error code, not a listing
			"7.113.0.203.bl.example":    a("127.0.0.1"),       // never a listing (RFC 5782 2.1)
			"1.100.51.198.weak.example": a("10.0.0.1"),        // outside 127/8
		},
		TXT:  map[string][]string{"2.0.0.127.bl.example": {"Listed for testing\r\nsee https://bl.example/"}},
		Fail: map[string]bool{"5.5.5.198.bl.example": true},
	}
}

func verdict(t *testing.T, c *Check, ip string) (filter.Verdict, *filter.Txn) {
	t.Helper()
	txn := &filter.Txn{Conn: &filter.Conn{IP: netip.MustParseAddr(ip)}, Values: map[string]any{}}
	return c.Connect(context.Background(), txn), txn
}

func TestConnect(t *testing.T) {
	c, err := New(Options{Resolver: fakeDNS(), Zones: []Zone{{"bl.example", 1}, {"weak.example", 0.5}}, RejectWeight: 1})
	if err != nil {
		t.Fatal(err)
	}
	v, txn := verdict(t, c, "127.0.0.2")
	if v.Action != filter.Reject || v.Code != 554 || v.Enhanced != "5.7.1" ||
		v.Message != "Service unavailable; Client host [127.0.0.2] blocked using bl.example; Listed for testing  see https://bl.example/" {
		t.Fatalf("test entry: %+v", v)
	}
	if ls, _ := txn.Values["dnsbl"].([]Listing); len(ls) != 2 || !strings.Contains(v.Reason, "weight 1.5") {
		t.Errorf("listings: %+v, reason %q", txn.Values["dnsbl"], v.Reason)
	}
	v, _ = verdict(t, c, "192.0.2.99")
	if v.Action != filter.Tag || v.Score != 1.5 || v.Symbol != "DNSBL" {
		t.Errorf("weak listing only: %+v", v)
	}
	for _, ip := range []string{"203.0.113.7", "198.51.100.1", "198.5.5.5", "127.0.0.1", "10.1.2.3", "::1"} {
		if v, _ := verdict(t, c, ip); v.Action != filter.Accept {
			t.Errorf("%s: %+v", ip, v)
		}
	}
}

// TestTrustedSkipped: a client the access table trusts is not looked up: its refusal would be waived anyway.
func TestTrustedSkipped(t *testing.T) {
	c, err := New(Options{Resolver: fakeDNS(), Zones: []Zone{{"bl.example", 1}}})
	if err != nil {
		t.Fatal(err)
	}
	txn := &filter.Txn{Conn: &filter.Conn{IP: netip.MustParseAddr("127.0.0.2"), Trusted: true}, Values: map[string]any{}}
	if v := c.Connect(context.Background(), txn); v.Action != filter.Accept || v.Reason != "" || txn.Values["dnsbl"] != nil {
		t.Errorf("trusted listed client: %+v, values %v", v, txn.Values)
	}
}
