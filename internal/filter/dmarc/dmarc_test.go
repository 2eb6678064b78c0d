package dmarc

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
	"golang.org/x/net/idna"

	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/arc"
	"github.com/postern/postern/internal/filter/dkim"
	"github.com/postern/postern/internal/filter/internal/sharedtest"
	"github.com/postern/postern/internal/filter/spf"
)

// TestOrgDomainVectors runs the Public Suffix List's own test vectors (shared/testdata/dmarc/publicsuffix):
// "input expected", "null" meaning no Organizational Domain.
func TestOrgDomainVectors(t *testing.T) {
	b := sharedtest.Read(t, "dmarc/publicsuffix/tests.txt")
	pass := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || strings.HasPrefix(f[0], "//") {
			continue
		}
		in, want := f[0], f[1]
		if in == "null" {
			in = ""
		}
		got, err := OrgDomain(in)
		if err != nil {
			got = "null"
		}
		if want != "null" {
			want, _ = idna.Lookup.ToASCII(strings.ToLower(want))
		}
		if got != want {
			t.Errorf("OrgDomain(%q) = %q (%v), want %q", in, got, err, want)
			continue
		}
		pass++
	}
	t.Logf("%d public suffix vectors pass", pass)
}

func TestParseRecord(t *testing.T) {
	r, err := ParseRecord("v=DMARC1; p=Reject; sp=none; adkim=s; aspf=r; pct=20; rua=mailto:a@example.com,https://x; fo=1;")
	if err != nil || r.Policy != PolicyReject || r.SubdomainPolicy != PolicyNone || !r.StrictDKIM || r.StrictSPF || r.Percent != 20 || len(r.RUA) != 1 {
		t.Fatalf("ParseRecord = %+v, %v", r, err)
	}
	// Bad optional values fall back to defaults (RFC 7489 6.3).
	if r, err := ParseRecord("v=DMARC1;p=quarantine;pct=500;adkim=x;junk"); err != nil || r.Percent != 100 || r.StrictDKIM {
		t.Errorf("lenient parse = %+v, %v", r, err)
	}
	// Bad p= with rua=: p=none (6.6.3 step 6); without: error.
	if r, err := ParseRecord("v=DMARC1; p=bogus; rua=mailto:d@example.com"); err != nil || r.Policy != PolicyNone {
		t.Errorf("bad p with rua = %+v, %v", r, err)
	}
	for _, bad := range []string{"v=DMARC1; p=bogus", "v=DMARC1", "p=reject; v=DMARC1", "v=spf1 -all", ""} {
		if _, err := ParseRecord(bad); err == nil {
			t.Errorf("ParseRecord(%q) accepted", bad)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add("v=DMARC1; p=reject; sp=none; adkim=s; pct=50; rua=mailto:x@example.com")
	f.Add("v=DMARC1;p=quarantine")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecord(s)
		if err == nil && (r.Percent < 0 || r.Percent > 100 || r.Policy == "") {
			t.Fatalf("%q: %+v", s, r)
		}
		_, _ = OrgDomain(s)
	})
}

func message(t *testing.T, from string) *filter.Message {
	t.Helper()
	raw := "From: " + from + "\r\nSubject: x\r\n\r\nbody\r\n"
	if from == "" {
		raw = "Subject: x\r\n\r\nbody\r\n"
	}
	return rawMessage(t, []byte(raw))
}

func TestCheck(t *testing.T) {
	res := &dns.Fake{
		TXT: map[string][]string{
			"_dmarc.reject.test":     {"v=DMARC1; p=reject; sp=quarantine"},
			"_dmarc.quar.test":       {"v=DMARC1; p=quarantine; adkim=s; aspf=s"},
			"_dmarc.none.test":       {"v=DMARC1; p=none"},
			"_dmarc.half.test":       {"v=DMARC1; p=reject; pct=50"},
			"_dmarc.twice.test":      {"v=DMARC1; p=reject", "v=DMARC1; p=none"},
			"_dmarc.other.test":      {"some other record", "v=DMARC1; p=reject"},
			"_dmarc.sub.nosp.test":   {"v=DMARC1; p=none"},
			"_dmarc.nosp.test":       {"v=DMARC1; p=reject"},
			"_dmarc.list.co.uk":      {"v=DMARC1; p=reject"},
			"_dmarc.example.invalid": {"v=DMARC1; p=reject"},
		},
		Fail: map[string]bool{"_dmarc.tempfail.test": true},
	}
	type auth struct {
		spfDomain, dkimDomain string
		arcSealers            []string // a passing ARC chain sealed by these, oldest first
	}
	cases := []struct {
		name, from string
		auth       auth
		sample     bool
		rejAsQ     bool
		want       authres.ResultValue
		action     filter.Action
		junk       bool
	}{
		{"dkim aligned relaxed", "a@reject.test", auth{spfDomain: "", dkimDomain: "mail.reject.test"}, true, false, authres.ResultPass, filter.Accept, false},
		{"spf aligned relaxed", "a@news.reject.test", auth{spfDomain: "bounce.reject.test", dkimDomain: ""}, true, false, authres.ResultPass, filter.Accept, false},
		{"unaligned: reject", "a@reject.test", auth{spfDomain: "evil.test", dkimDomain: "evil.test"}, true, false, authres.ResultFail, filter.Reject, false},
		{"reject as quarantine", "a@reject.test", auth{spfDomain: "", dkimDomain: ""}, true, true, authres.ResultFail, filter.Tag, true},
		{"subdomain gets sp", "a@news.reject.test", auth{spfDomain: "", dkimDomain: ""}, true, false, authres.ResultFail, filter.Tag, true},
		{"strict: subdomain does not align", "a@quar.test", auth{spfDomain: "mail.quar.test", dkimDomain: "mail.quar.test"}, true, false, authres.ResultFail, filter.Tag, true},
		{"strict: exact aligns", "a@quar.test", auth{spfDomain: "", dkimDomain: "quar.test"}, true, false, authres.ResultPass, filter.Accept, false},
		{"p=none", "a@none.test", auth{}, true, false, authres.ResultFail, filter.Accept, false},
		{"pct sampled out: reject to quarantine", "a@half.test", auth{}, false, false, authres.ResultFail, filter.Tag, true},
		{"pct sampled in", "a@half.test", auth{}, true, false, authres.ResultFail, filter.Reject, false},
		{"two records: none", "a@twice.test", auth{}, true, false, authres.ResultNone, filter.Accept, false},
		{"non-DMARC TXT ignored", "a@other.test", auth{}, true, false, authres.ResultFail, filter.Reject, false},
		{"own record wins over org's", "a@sub.nosp.test", auth{}, true, false, authres.ResultFail, filter.Accept, false},
		{"no sp: p applies to subdomains", "a@x.nosp.test", auth{}, true, false, authres.ResultFail, filter.Reject, false},
		{"public suffix boundary", "a@shop.list.co.uk", auth{spfDomain: "", dkimDomain: "other.co.uk"}, true, false, authres.ResultFail, filter.Reject, false},
		{"trusted ARC sealer spares", "a@reject.test", auth{arcSealers: []string{"x.example", "lists.example"}}, true, false, authres.ResultFail, filter.Accept, false},
		{"untrusted newest sealer", "a@reject.test", auth{arcSealers: []string{"lists.example", "x.example"}}, true, false, authres.ResultFail, filter.Reject, false},
		{"no policy", "a@nopolicy.test", auth{}, true, false, authres.ResultNone, filter.Accept, false},
		{"dns failure", "a@tempfail.test", auth{}, true, false, authres.ResultTempError, filter.Accept, false},
		{"no From", "", auth{}, true, false, authres.ResultNone, filter.Accept, false},
		{"two From domains", "a@reject.test, b@none.test", auth{}, true, false, authres.ResultNone, filter.Accept, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Options{Resolver: res, RejectAsQuarantine: tc.rejAsQ, Sample: func(int) bool { return tc.sample },
				TrustedSealers: []string{"Lists.Example."}})
			if err != nil {
				t.Fatal(err)
			}
			txn := &filter.Txn{Conn: &filter.Conn{IP: netip.MustParseAddr("192.0.2.1")}, Values: map[string]any{}}
			if tc.auth.spfDomain != "" {
				txn.Values[spf.Name] = &spf.Result{Value: authres.ResultPass, Domain: tc.auth.spfDomain}
			}
			if tc.auth.arcSealers != nil {
				txn.Values[arc.Name] = &arc.Result{Value: authres.ResultPass, Sealers: tc.auth.arcSealers}
			}
			if tc.auth.dkimDomain != "" {
				txn.Values[dkim.Name] = []dkim.Signature{{Value: authres.ResultFail, Domain: "x.test"}, {Value: authres.ResultPass, Domain: tc.auth.dkimDomain}}
			}
			v := c.Data(context.Background(), txn, message(t, tc.from))
			r := txn.Values[Name].(*Result)
			if r.Value != tc.want || v.Action != tc.action || v.Junk != tc.junk {
				t.Fatalf("result %+v, verdict %+v", r, v)
			}
			h := authres.Format("mx", txn.Results)
			if !strings.Contains(h, "dmarc="+string(tc.want)) {
				t.Errorf("Authentication-Results %q", h)
			}
			if v.Action == filter.Reject {
				if code, enh, _ := v.Reply("data"); code != 550 || enh != "5.7.1" {
					t.Errorf("reply %d %s", code, enh)
				}
			}
		})
	}
}
