package directory

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/postern/postern/internal/store"
)

func TestAccess(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.access = []store.AccessRule{
		{Pattern: "10.0.0.0/8", Action: "RELAY"}, {Pattern: "10.1.0.0/16", Action: "reject"}, {Pattern: "10.1.2.3", Action: "OK"},
		{Pattern: "10.1.2.0/24", Action: "DISCARD"}, {Pattern: "172.16.7.7/12", Action: "OK"}, // un-masked CIDR
		{Pattern: "spam.example", Action: "REJECT"}, {Pattern: "friend@spam.example", Action: "OK"},
		{Pattern: "postmaster@", Action: "OK"}, {Pattern: "Boss@Corp.Example", Action: "RELAY"},
		{Pattern: "2001:db8::/32", Action: "DISCARD"}, {Pattern: "2001:DB8:0::9", Action: "OK"},
		{Pattern: "bücher.example", Action: "REJECT"}, {Pattern: "org", Action: "DISCARD"},
		{Pattern: "bad.example", Action: "MAYBE"}, // unknown action: ignored
	}
	d := newDir(t, f)
	for _, tt := range []struct {
		ip   string
		keys []string
		want string
	}{
		{"10.1.2.3", nil, "OK"},                                // exact IP beats every CIDR
		{"10.1.2.4", nil, "DISCARD"},                           // /24 beats /16 and /8: longest prefix
		{"10.1.9.9", nil, "REJECT"},                            // /16 beats /8; action upper-cased
		{"10.9.9.9", []string{"friend@spam.example"}, "RELAY"}, // IP rules come before keys
		{"::ffff:10.1.2.3", nil, "OK"},                         // IPv4-mapped client
		{"2001:db8::9", nil, "OK"},                             // IPv6 rule written in another text form
		{"2001:db8::5", nil, "DISCARD"},
		{"192.0.2.1", nil, ""},
		{"172.31.0.1", nil, "OK"},
		{"192.0.2.1", []string{"x@mx.spam.example"}, "REJECT"},   // parent domain
		{"192.0.2.1", []string{"friend@spam.example"}, "OK"},     // address beats domain
		{"192.0.2.1", []string{"Friend@SPAM.example"}, "OK"},     // case
		{"192.0.2.1", []string{"postmaster@spam.example"}, "OK"}, // local@ beats domain
		{"192.0.2.1", []string{"boss@corp.example"}, "RELAY"},
		{"192.0.2.1", []string{"a@ok.example", "Spam.Example"}, "REJECT"}, // second key
		{"192.0.2.1", []string{"a@ok.example"}, ""},
		{"192.0.2.1", []string{"a@xn--bcher-kva.example"}, "REJECT"}, // U-label rule, A-label key
		{"192.0.2.1", []string{"a@sub.bücher.example"}, "REJECT"},
		{"192.0.2.1", []string{"x@bad.example"}, ""},
		{"192.0.2.1", []string{"x@ok.org"}, "DISCARD"}, // a top-level domain rule
		{"192.0.2.1", []string{"", "<>"}, ""},
	} {
		if got, err := d.Access(context.Background(), netip.MustParseAddr(tt.ip), tt.keys...); got != tt.want || err != nil {
			t.Errorf("Access(%s, %v) = %q, %v; want %q", tt.ip, tt.keys, got, err, tt.want)
		}
	}
	// The zero address skips the IP rules.
	if got, _ := d.Access(context.Background(), netip.Addr{}, "friend@spam.example"); got != "OK" {
		t.Errorf("Access(no IP, friend) = %q", got)
	}
}

func TestAccessEmpty(t *testing.T) {
	t.Parallel()
	d := newDir(t, newFake())
	if got, err := d.Access(context.Background(), netip.MustParseAddr("10.0.0.1"), "a@b.org"); got != "" || err != nil {
		t.Errorf("empty table: %q %v", got, err)
	}
}

func TestAccessCandidates(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"a@x.b.org": "a@x.b.org a@ x.b.org b.org org",
		"x.b.org":   "x.b.org b.org org",
		"@b.org":    "@b.org b.org org",
	} {
		if got := strings.Join(accessCandidates(in), " "); got != want {
			t.Errorf("accessCandidates(%s) = %s; want %s", in, got, want)
		}
	}
}

func TestValidateAccess(t *testing.T) {
	t.Parallel()
	for _, ok := range [][2]string{
		{"192.0.2.1", "ok"}, {"10.0.0.0/8", "RELAY"}, {"example.org", "REJECT"}, {"a@example.org", "DISCARD"},
		{"postmaster@", "OK"}, {"::1", "OK"}, {"2001:db8::/32", "Reject"}, {"Example.ORG", "ok"}, {"bücher.example", "OK"},
		{"localhost", "RELAY"}, {"mx1.example.org", "REJECT"},
	} {
		if err := ValidateAccess(ok[0], ok[1]); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, bad := range [][2]string{
		{"192.0.2.1", "MAYBE"}, {"192.0.2.1", ""}, {"not a pattern!", "OK"}, {"a@@b", "OK"}, {"nodots", "OK"},
		{"", "OK"}, {"@", "OK"}, {"a b@", "OK"}, {"10.1", "REJECT"}, {"fe80::1%eth0", "OK"}, {"10.0.0.0/33", "OK"},
		{"a@", "REJECT "},
	} {
		if err := ValidateAccess(bad[0], bad[1]); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
