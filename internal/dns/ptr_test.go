package dns

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
)

func TestClientPTR(t *testing.T) {
	addr := startServer(t, map[string][]string{
		"1.2.0.192.in-addr.arpa. PTR": {"1.2.0.192.in-addr.arpa. 60 IN PTR Mail.Example.test."},
	}, nil)
	c, err := NewClient(ClientOptions{Server: addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	names, _, err := c.LookupPTR(ctx, netip.MustParseAddr("192.0.2.1"))
	if err != nil || !slices.Equal(names, []string{"mail.example.test"}) {
		t.Fatalf("LookupPTR = %v, %v", names, err)
	}
	if _, _, err := c.LookupPTR(ctx, netip.MustParseAddr("192.0.2.9")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LookupPTR of an unknown address = %v", err)
	}
}

func TestFakePTRAndCNAME(t *testing.T) {
	f := &Fake{
		PTR:   map[string][]string{"2001:db8::1": {"host.example.test"}},
		CNAME: map[string]string{"alias.test": "Real.Test.", "loop1.test": "loop2.test", "loop2.test": "loop1.test"},
		TXT:   map[string][]string{"real.test": {"v=spf1 -all"}},
	}
	ctx := context.Background()
	if n, _, err := f.LookupPTR(ctx, netip.MustParseAddr("2001:db8::1")); err != nil || n[0] != "host.example.test" {
		t.Fatalf("LookupPTR = %v, %v", n, err)
	}
	if txt, _, err := f.LookupTXT(ctx, "ALIAS.test."); err != nil || txt[0] != "v=spf1 -all" {
		t.Fatalf("TXT through CNAME = %v, %v", txt, err)
	}
	if _, _, err := f.LookupTXT(ctx, "loop1.test"); !IsTemporary(err) {
		t.Fatalf("CNAME loop = %v, want a temporary error", err)
	}
}
