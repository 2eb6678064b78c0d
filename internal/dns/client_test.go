package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"
)

// zone is a tiny authoritative server for the tests: records by "name. TYPE", plus names that SERVFAIL.
func startServer(t *testing.T, records map[string][]string, servfail map[string]bool) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch {
		case servfail[q.Name]:
			m.Rcode = mdns.RcodeServerFailure
		default:
			known := false
			for key, rrs := range records {
				if len(key) > len(q.Name) && key[:len(q.Name)] == q.Name && key[len(q.Name)] == ' ' {
					known = true
				}
				if key == q.Name+" "+mdns.TypeToString[q.Qtype] {
					for _, s := range rrs {
						rr, err := mdns.NewRR(s)
						if err != nil {
							panic(err)
						}
						m.Answer = append(m.Answer, rr)
					}
				}
			}
			if !known {
				m.Rcode = mdns.RcodeNameError
			}
			m.AuthenticatedData = q.Name == "secure.test." || q.Name == "_25._tcp.secure.test."
		}
		w.WriteMsg(m)
	})
	srv := &mdns.Server{PacketConn: pc, Handler: h}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestClient(t *testing.T) {
	addr := startServer(t, map[string][]string{
		"example.test. MX":       {"example.test. 60 IN MX 20 mx2.example.test.", "example.test. 60 IN MX 10 MX1.example.test."},
		"example.test. TXT":      {`example.test. 60 IN TXT "v=spf1 " "mx -all"`},
		"mx1.example.test. A":    {"mx1.example.test. 60 IN A 192.0.2.1"},
		"mx1.example.test. AAAA": {"mx1.example.test. 60 IN AAAA 2001:db8::1"},
		"v6.example.test. AAAA":  {"v6.example.test. 60 IN AAAA 2001:db8::6"},
		"null.test. MX":          {"null.test. 60 IN MX 0 ."},
		"secure.test. A":         {"secure.test. 60 IN A 192.0.2.9"},
		"_25._tcp.secure.test. TLSA": {"_25._tcp.secure.test. 60 IN TLSA 3 1 1 " +
			"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
	}, map[string]bool{"broken.test.": true})
	c, err := NewClient(ClientOptions{Server: addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mx, _, err := c.LookupMX(ctx, "Example.TEST")
	if err != nil || len(mx) != 2 || mx[1] != (MX{Host: "mx1.example.test", Pref: 10}) {
		t.Fatalf("MX = %+v, %v", mx, err)
	}
	if mx, _, err := c.LookupMX(ctx, "null.test"); err != nil || !IsNullMX(mx) {
		t.Fatalf("null MX = %+v, %v", mx, err)
	}
	ips, res, err := c.LookupIP(ctx, "mx1.example.test.")
	if err != nil || len(ips) != 2 || ips[0] != netip.MustParseAddr("192.0.2.1") || ips[1] != netip.MustParseAddr("2001:db8::1") || res.Authentic {
		t.Fatalf("IP = %v, %+v, %v", ips, res, err)
	}
	if ips, _, err := c.LookupIP(ctx, "v6.example.test"); err != nil || len(ips) != 1 {
		t.Fatalf("AAAA only = %v, %v", ips, err)
	}
	if ips, res, err := c.LookupIP(ctx, "secure.test"); err != nil || len(ips) != 1 {
		t.Fatalf("secure = %v, %+v, %v", ips, res, err)
	}
	if _, res, err := c.LookupTLSA(ctx, 25, "secure.test"); err != nil || !res.Authentic {
		t.Fatalf("TLSA authentic = %+v, %v", res, err)
	}
	txt, _, err := c.LookupTXT(ctx, "example.test")
	if err != nil || len(txt) != 1 || txt[0] != "v=spf1 mx -all" {
		t.Fatalf("TXT = %q, %v", txt, err)
	}
	if _, _, err := c.LookupMX(ctx, "nowhere.test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("NXDOMAIN: %v", err)
	}
	if _, _, err := c.LookupMX(ctx, "mx1.example.test"); !errors.Is(err, ErrNoData) {
		t.Fatalf("NODATA: %v", err)
	}
	if _, _, err := c.LookupMX(ctx, "broken.test"); !IsTemporary(err) {
		t.Fatalf("SERVFAIL: %v", err)
	}
	if ips, _, err := c.LookupIP(ctx, "192.0.2.77"); err != nil || ips[0].String() != "192.0.2.77" {
		t.Fatalf("literal: %v %v", ips, err)
	}
	dead, _ := NewClient(ClientOptions{Server: "127.0.0.1:1", Timeout: 200e6})
	if _, _, err := dead.LookupMX(ctx, "example.test"); !IsTemporary(err) {
		t.Fatalf("no server: %v", err)
	}
}

func TestFake(t *testing.T) {
	f := &Fake{MX: map[string][]MX{"a.test": {{Host: "mx.a.test", Pref: 5}}}, IP: map[string][]netip.Addr{"mx.a.test": {netip.MustParseAddr("127.0.0.1")}},
		Fail: map[string]bool{"down.test": true}}
	ctx := context.Background()
	if mx, _, err := f.LookupMX(ctx, "A.test."); err != nil || len(mx) != 1 {
		t.Fatalf("MX %v %v", mx, err)
	}
	if _, _, err := f.LookupMX(ctx, "mx.a.test"); !errors.Is(err, ErrNoData) {
		t.Fatalf("NODATA %v", err)
	}
	if _, _, err := f.LookupIP(ctx, "b.test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("NXDOMAIN %v", err)
	}
	if _, _, err := f.LookupMX(ctx, "down.test"); !IsTemporary(err) {
		t.Fatalf("temp %v", err)
	}
}
