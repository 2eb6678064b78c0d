package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/outbound/dane"
	"github.com/postern/postern/internal/outbound/mtasts"
)

// fixedPolicy is a PolicySource with one policy for every domain.
type fixedPolicy struct{ p *mtasts.Policy }

func (f fixedPolicy) Get(context.Context, string) *mtasts.Policy { return f.p }

// perDomain is a PolicySource with a policy per domain.
type perDomain map[string]*mtasts.Policy

func (p perDomain) Get(_ context.Context, domain string) *mtasts.Policy { return p[domain] }

// leafOf returns the certificate a server TLS config presents.
func leafOf(t *testing.T, cfg *tls.Config) *x509.Certificate {
	t.Helper()
	cert, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// secureLab: remote.test's one MX, mx.remote.test (192.0.2.1), served by mta with the given TLS config; the
// resolver answers with the AD bit.
func secureLab(t *testing.T, srvTLS *tls.Config, tweak func(*smtp.Server)) (*lab, *fakeMTA) {
	t.Helper()
	l := newLab()
	mta := startMTA(t, srvTLS, tweak)
	l.dns.Authentic = true
	l.dns.TLSA = map[string][]dns.TLSA{}
	l.dns.MX["remote.test"] = []dns.MX{{Host: "mx.remote.test", Pref: 10}}
	l.host("mx.remote.test", "192.0.2.1", mta)
	return l, mta
}

func TestDANE(t *testing.T) {
	srvTLS, _ := selfSigned(t, "mx.remote.test")
	other, _ := selfSigned(t, "mx.remote.test")
	good := dane.Record(dane.UsageDANEEE, dane.SelectorSPKI, dane.MatchSHA256, leafOf(t, srvTLS))
	wrong := dane.Record(dane.UsageDANEEE, dane.SelectorSPKI, dane.MatchSHA256, leafOf(t, other))
	pkixEE := dane.Record(dane.UsagePKIXEE, dane.SelectorSPKI, dane.MatchSHA256, leafOf(t, srvTLS))
	const key = "_25._tcp.mx.remote.test"
	for _, tc := range []struct {
		name      string
		recs      []dns.TLSA
		insecure  bool // answers without the AD bit
		noTLS     bool // the server offers no STARTTLS
		sts       *mtasts.Policy
		status    string
		tlsDetail string
	}{
		{name: "match", recs: []dns.TLSA{wrong, good}, status: "250", tlsDetail: "verified=dane"},
		// RFC 7672 2.2: a secure TLSA RRset makes TLS mandatory and authenticated; a mismatch is temporary.
		{name: "mismatch", recs: []dns.TLSA{wrong}, status: "451 4.7.5"},
		{name: "no STARTTLS", recs: []dns.TLSA{good}, noTLS: true, status: "451 4.7.4"},
		// Insecure records are ignored: opportunistic TLS, the certificate unverified.
		{name: "insecure", recs: []dns.TLSA{wrong}, insecure: true, status: "250", tlsDetail: "verified=none"},
		// Only unusable records (PKIX-EE, RFC 7672 3.1.3): TLS required, certificate not checked.
		{name: "unusable", recs: []dns.TLSA{pkixEE}, status: "250", tlsDetail: "verified=none policy=dane-unusable"},
		{name: "unusable, no STARTTLS", recs: []dns.TLSA{pkixEE}, noTLS: true, status: "451 4.7.4"},
		// RFC 8461 2: DANE takes precedence over MTA-STS, even one naming other hosts.
		{name: "over MTA-STS", recs: []dns.TLSA{good}, sts: &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"other.test"}},
			status: "250", tlsDetail: "verified=dane"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := srvTLS
			if tc.noTLS {
				cfg = nil
			}
			l, mta := secureLab(t, cfg, nil)
			l.dns.TLSA[key] = tc.recs
			l.dns.Authentic = !tc.insecure
			c := l.client(t, func(o *Options) {
				if tc.sts != nil {
					o.MTASTS = fixedPolicy{tc.sts}
				}
			})
			defer c.Close()
			res := c.Send(context.Background(), message("a@remote.test"))[0]
			if !strings.HasPrefix(res.Status(), tc.status) || !strings.Contains(res.TLS, tc.tlsDetail) {
				t.Fatalf("result %+v (status %q), want %s with %q", res, res.Status(), tc.status, tc.tlsDetail)
			}
			if n := len(mta.messages()); res.Delivered() != (n == 1) {
				t.Fatalf("MTA got %d messages", n)
			}
		})
	}
}

func TestDANELookupFailure(t *testing.T) {
	srvTLS, _ := selfSigned(t, "mx.remote.test")
	l, mta := secureLab(t, srvTLS, nil)
	// The address records are secure but the TLSA lookup fails: RFC 7672 2.2.3, no delivery.
	l.dns.Fail = map[string]bool{"_25._tcp.mx.remote.test": true}
	c := l.client(t, nil)
	defer c.Close()
	if res := c.Send(context.Background(), message("a@remote.test"))[0]; res.Status()[:9] != "451 4.7.5" || len(mta.messages()) != 0 {
		t.Fatalf("TLSA SERVFAIL: %+v", res)
	}
	// With DANE off the same host gets opportunistic TLS.
	c2 := l.client(t, func(o *Options) { o.DisableDANE = true })
	defer c2.Close()
	if res := c2.Send(context.Background(), message("a@remote.test"))[0]; !res.Delivered() {
		t.Fatalf("DANE off: %+v", res)
	}
}

func TestMTASTS(t *testing.T) {
	srvTLS, pool := selfSigned(t, "mx.remote.test")
	wrongName, wrongPool := selfSigned(t, "www.remote.test")
	enforce := &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"*.remote.test"}}
	for _, tc := range []struct {
		name      string
		srv       *tls.Config
		roots     *x509.CertPool
		policy    *mtasts.Policy
		status    string
		tlsDetail string
	}{
		{"enforce", srvTLS, pool, enforce, "250", "verified=pkix policy=mta-sts"},
		{"enforce, wrong name", wrongName, wrongPool, enforce, "451 4.7.5", ""},
		{"enforce, untrusted", srvTLS, nil, enforce, "451 4.7.5", ""},
		{"enforce, no STARTTLS", nil, pool, enforce, "451 4.7.4", ""},
		{"enforce, host not listed", srvTLS, pool, &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mail.remote.test"}}, "451 4.7.0", ""},
		// RFC 8461 5: testing mode delivers whatever happens.
		{"testing, wrong name", wrongName, wrongPool, &mtasts.Policy{Mode: mtasts.ModeTesting, MX: []string{"mail.remote.test"}}, "250", "verified=none policy=mta-sts-testing"},
		{"testing, no TLS", nil, pool, &mtasts.Policy{Mode: mtasts.ModeTesting, MX: []string{"*.remote.test"}}, "250", ""},
		{"none", nil, pool, &mtasts.Policy{Mode: mtasts.ModeNone}, "250", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, mta := secureLab(t, tc.srv, nil)
			l.dns.Authentic = false // no DANE here
			c := l.client(t, func(o *Options) {
				o.MTASTS = fixedPolicy{tc.policy}
				o.TLSConfig = &tls.Config{RootCAs: tc.roots}
			})
			defer c.Close()
			res := c.Send(context.Background(), message("a@remote.test"))[0]
			if !strings.HasPrefix(res.Status(), tc.status) || !strings.Contains(res.TLS, tc.tlsDetail) {
				t.Fatalf("result %+v (status %q), want %s with %q", res, res.Status(), tc.status, tc.tlsDetail)
			}
			if n := len(mta.messages()); res.Delivered() != (n == 1) {
				t.Fatalf("MTA got %d messages", n)
			}
		})
	}
}

// TestMTASTSSkipsUnlistedHost: the best MX is not in the enforced policy, so the next one takes the mail.
func TestMTASTSSkipsUnlistedHost(t *testing.T) {
	srvTLS, pool := selfSigned(t, "mx2.remote.test")
	l := newLab()
	rogue := startMTA(t, nil, nil)
	good := startMTA(t, srvTLS, nil)
	l.dns.MX["remote.test"] = []dns.MX{{Host: "rogue.attacker.test", Pref: 5}, {Host: "mx2.remote.test", Pref: 10}}
	l.host("rogue.attacker.test", "192.0.2.66", rogue)
	l.host("mx2.remote.test", "192.0.2.2", good)
	c := l.client(t, func(o *Options) {
		o.MTASTS = fixedPolicy{&mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx2.remote.test"}}}
		o.TLSConfig = &tls.Config{RootCAs: pool}
	})
	defer c.Close()
	res := c.Send(context.Background(), message("a@remote.test"))[0]
	if !res.Delivered() || len(rogue.messages()) != 0 || len(good.messages()) != 1 || !good.messages()[0].tls {
		t.Fatalf("result %+v; rogue got %d", res, len(rogue.messages()))
	}
}

func TestRequireTLS(t *testing.T) {
	srvTLS, pool := selfSigned(t, "mx.remote.test")
	withREQUIRETLS := func(s *smtp.Server) { s.EnableREQUIRETLS = true }
	for _, tc := range []struct {
		name     string
		srv      *tls.Config
		tweak    func(*smtp.Server)
		roots    *x509.CertPool
		insecure bool // MX lookup without the AD bit
		policy   *mtasts.Policy
		status   string
	}{
		{"verified, advertised", srvTLS, withREQUIRETLS, pool, false, nil, "250"},
		{"not advertised", srvTLS, nil, pool, false, nil, "550 5.7.30"},
		{"unverified certificate", srvTLS, withREQUIRETLS, nil, false, nil, "550 5.7.30"},
		{"no STARTTLS", nil, nil, pool, false, nil, "550 5.7.30"},
		// RFC 8689 5: an insecure MX lookup is acceptable only when an MTA-STS policy lists the host.
		{"insecure MX", srvTLS, withREQUIRETLS, pool, true, nil, "550 5.7.30"},
		{"insecure MX, MTA-STS", srvTLS, withREQUIRETLS, pool, true, &mtasts.Policy{Mode: mtasts.ModeTesting, MX: []string{"mx.remote.test"}}, "250"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, mta := secureLab(t, tc.srv, tc.tweak)
			l.dns.Authentic = !tc.insecure
			c := l.client(t, func(o *Options) {
				o.TLSConfig = &tls.Config{RootCAs: tc.roots}
				if tc.policy != nil {
					o.MTASTS = fixedPolicy{tc.policy}
				}
			})
			defer c.Close()
			msg := message("a@remote.test")
			msg.RequireTLS = true
			res := c.Send(context.Background(), msg)[0]
			if !strings.HasPrefix(res.Status(), tc.status) {
				t.Fatalf("result %+v (status %q), want %s", res, res.Status(), tc.status)
			}
			got := mta.messages()
			if res.Delivered() && (len(got) != 1 || !got[0].mail.RequireTLS || !got[0].tls) {
				t.Fatalf("MTA got %+v", got)
			}
			if !res.Delivered() && (len(got) != 0 || !res.Permanent()) {
				t.Fatalf("refused REQUIRETLS message: %+v, MTA got %d", res, len(got))
			}
		})
	}
}

// TestRequireTLSRetriesWhenAHostIsDown: one MX is unreachable and the other lacks REQUIRETLS: the message waits
// (4xx) for the first instead of bouncing.
func TestRequireTLSRetriesWhenAHostIsDown(t *testing.T) {
	srvTLS, pool := selfSigned(t, "mx2.remote.test")
	l := newLab()
	l.dns.Authentic = true
	l.dns.TLSA = map[string][]dns.TLSA{}
	l.dns.MX["remote.test"] = []dns.MX{{Host: "mx1.remote.test", Pref: 10}, {Host: "mx2.remote.test", Pref: 20}}
	l.host("mx1.remote.test", "192.0.2.1", nil) // refuses connections
	l.host("mx2.remote.test", "192.0.2.2", startMTA(t, srvTLS, nil))
	c := l.client(t, func(o *Options) { o.TLSConfig = &tls.Config{RootCAs: pool} })
	defer c.Close()
	msg := message("a@remote.test")
	msg.RequireTLS = true
	if res := c.Send(context.Background(), msg)[0]; res.Code != 451 || res.Enhanced != "4.4.1" {
		t.Fatalf("result %+v, want the temporary failure of mx1", res)
	}
}

// TestTLSRequiredNo: a message whose sender wrote "TLS-Required: No" (RFC 8689 4.2.2) is delivered with
// opportunistic TLS where DANE or MTA-STS would have held it back; with REQUIRETLS the header is ignored.
func TestTLSRequiredNo(t *testing.T) {
	srvTLS, _ := selfSigned(t, "mx.remote.test")
	other, _ := selfSigned(t, "mx.remote.test")
	wrong := dane.Record(dane.UsageDANEEE, dane.SelectorSPKI, dane.MatchSHA256, leafOf(t, other))
	const body = "From: a@local.test\r\nTLS-Required:  no \r\nSubject: x\r\n\r\nbody\r\n"
	withHeader := func() *Message {
		m := message("a@remote.test")
		m.Size = int64(len(body))
		m.Open = func(context.Context) (io.ReadCloser, error) { return bodyOf(body), nil }
		return m
	}
	for _, tc := range []struct {
		name    string
		dane    bool
		sts     *mtasts.Policy
		require bool
		status  string
	}{
		{name: "DANE mismatch", dane: true, status: "250"},
		{name: "MTA-STS names other hosts", sts: &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"other.test"}}, status: "250"},
		{name: "REQUIRETLS wins", dane: true, require: true, status: "550 5.7.30"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, mta := secureLab(t, srvTLS, nil)
			if tc.dane {
				l.dns.TLSA["_25._tcp.mx.remote.test"] = []dns.TLSA{wrong}
			}
			c := l.client(t, func(o *Options) {
				if tc.sts != nil {
					o.MTASTS = fixedPolicy{tc.sts}
				}
			})
			defer c.Close()
			m := withHeader()
			m.RequireTLS = tc.require
			res := c.Send(context.Background(), m)[0]
			if !strings.HasPrefix(res.Status(), tc.status) {
				t.Fatalf("result %+v (status %q), want %s", res, res.Status(), tc.status)
			}
			if n := len(mta.messages()); res.Delivered() != (n == 1) {
				t.Fatalf("MTA got %d messages", n)
			}
		})
	}
}
