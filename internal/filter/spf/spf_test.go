package spf

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"

	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/mail"
)

func TestCheckVerdicts(t *testing.T) {
	res := &dns.Fake{
		TXT: map[string][]string{
			"pass.test":     {"v=spf1 ip4:192.0.2.0/24 -all"},
			"fail.test":     {"v=spf1 -all"},
			"soft.test":     {"v=spf1 ~all"},
			"perm.test":     {"v=spf1 ip4:192.0.2.1 bogus -all"},
			"mx.helo.test":  {"v=spf1 a -all"},
			"unrelated.org": {"not spf"},
		},
		IP:   map[string][]netip.Addr{"mx.helo.test": {netip.MustParseAddr("192.0.2.7")}},
		Fail: map[string]bool{"temp.test": true},
	}
	cases := []struct {
		from, helo string
		opts       Options
		want       authres.ResultValue
		action     filter.Action
		score      float64
	}{
		{"a@pass.test", "x", Options{}, authres.ResultPass, filter.Accept, 0},
		{"a@fail.test", "x", Options{}, authres.ResultFail, filter.Tag, DefaultFailScore},
		{"a@fail.test", "x", Options{RejectFail: true}, authres.ResultFail, filter.Reject, 0},
		{"a@fail.test", "x", Options{FailScore: -1}, authres.ResultFail, filter.Accept, 0},
		{"a@soft.test", "x", Options{}, authres.ResultSoftFail, filter.Tag, DefaultSoftFailScore},
		{"a@perm.test", "x", Options{}, authres.ResultPermError, filter.Tag, DefaultPermErrorScore},
		{"a@temp.test", "x", Options{}, authres.ResultTempError, filter.Accept, 0},
		{"a@temp.test", "x", Options{TempErrorTempfail: true}, authres.ResultTempError, filter.Tempfail, 0},
		{"a@nowhere.test", "x", Options{}, authres.ResultNone, filter.Accept, 0},
		{"", "mx.helo.test", Options{}, authres.ResultPass, filter.Accept, 0}, // null sender: HELO identity
	}
	for _, tc := range cases {
		o := tc.opts
		o.Resolver = res
		c, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		var from mail.Address
		if tc.from != "" {
			from, _ = mail.ParseAddress(tc.from)
		}
		txn := &filter.Txn{Conn: &filter.Conn{IP: netip.MustParseAddr("192.0.2.7"), Helo: tc.helo}, From: from, Values: map[string]any{}}
		v := c.Mail(context.Background(), txn)
		r, _ := txn.Values[Name].(*Result)
		if r == nil || r.Value != tc.want || v.Action != tc.action || v.Score != tc.score {
			t.Errorf("%s/%s %+v: result %+v, verdict %+v", tc.from, tc.helo, tc.opts, r, v)
			continue
		}
		h := authres.Format("mx.example", txn.Results)
		wantID := "smtp.mailfrom=" + tc.from
		if tc.from == "" {
			wantID = "smtp.helo=" + tc.helo
		}
		if !strings.Contains(h, "spf="+string(tc.want)) || !strings.Contains(h, wantID) {
			t.Errorf("Authentication-Results %q", h)
		}
		if v.Action == filter.Reject {
			if code, enh, _ := v.Reply("mail"); code != 550 || enh != "5.7.23" {
				t.Errorf("reject reply %d %s", code, enh)
			}
		}
	}
	// Authenticated clients are not checked.
	c, _ := New(Options{Resolver: res})
	txn := &filter.Txn{Conn: &filter.Conn{IP: netip.MustParseAddr("203.0.113.1"), AuthUser: "u@x"}, Values: map[string]any{}}
	if v := c.Mail(context.Background(), txn); v.Action != filter.Accept || len(txn.Results) != 0 {
		t.Errorf("authenticated: %+v %v", v, txn.Results)
	}
	if _, err := New(Options{}); err == nil {
		t.Error("New without resolver succeeded")
	}
}

func TestCheckRecord(t *testing.T) {
	good := []string{"v=spf1", "v=spf1 -all", "v=spf1 a mx/24 a:%{d}.example.com//64 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.example.com ~all",
		"v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} redirect=_spf.example.com", "v=spf1 foo=%{h}bar ptr:Example.COM. -all", "V=SPF1 +ALL"}
	bad := []string{"v=spf1 a:foo", "v=spf1 ip4:192.0.2.01", "v=spf1 ip4:192.0.2.1/032", "v=spf1 ip6", "v=spf1 a//129",
		"v=spf1 redirect=a.example redirect=b.example", "v=spf1 exp=", "v=spf1 a:example.123", "v=spf1 -all\tx",
		"v=spf1 exists:%{c}.example.com", "v=spf1 include:%{", "v=spf1 foo:bar", "v=spf1 a:ex\x80ample.com"}
	for _, r := range good {
		if err := checkRecord(r); err != nil {
			t.Errorf("checkRecord(%q) = %v", r, err)
		}
	}
	for _, r := range bad {
		if checkRecord(r) == nil {
			t.Errorf("checkRecord(%q) accepted", r)
		}
	}
}

func FuzzCheckRecord(f *testing.F) {
	f.Add("v=spf1 a mx ip4:192.0.2.0/24 -all")
	f.Add("v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} redirect=x.example")
	f.Fuzz(func(t *testing.T, rec string) {
		if isSPFRecord(rec) {
			_ = checkRecord(rec)
		}
		_, _ = checkMacroString(rec, true)
		_ = checkDomainSpec(rec)
	})
}
