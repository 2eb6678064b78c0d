package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/pki"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     *Policy // nil: syntax error
	}{
		{"rfc example", "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
			&Policy{Mode: ModeEnforce, MX: []string{"mail.example.com", "*.example.net", "backupmx.example.com"}, MaxAge: 604800 * time.Second}},
		{"lf, spaces, unknown key, case", "version: STSv1\nmode:testing \nMX:  Mail.Example.COM.\nfoo: bar\nmax_age:86400\n",
			&Policy{Mode: ModeTesting, MX: []string{"mail.example.com"}, MaxAge: 86400 * time.Second}},
		{"none without mx", "version: STSv1\nmode: none\nmax_age: 0\n", &Policy{Mode: ModeNone}},
		{"max_age capped", "version: STSv1\nmode: none\nmax_age: 9999999999\n", &Policy{Mode: ModeNone, MaxAge: MaxMaxAge}},
		{"no version", "mode: enforce\nmx: a.example\nmax_age: 1\n", nil},
		{"wrong version", "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", nil},
		{"bad mode", "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", nil},
		{"two modes", "version: STSv1\nmode: testing\nmode: enforce\nmx: a.example\nmax_age: 1\n", nil},
		{"no mx", "version: STSv1\nmode: enforce\nmax_age: 1\n", nil},
		{"no max_age", "version: STSv1\nmode: enforce\nmx: a.example\n", nil},
		{"negative max_age", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", nil},
		{"long max_age", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n", nil},
		{"bad mx", "version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n", nil},
		{"mid wildcard", "version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n", nil},
		{"no colon", "version: STSv1\nmode enforce\n", nil},
		{"html", "<html><body>Not found</body></html>", nil},
		{"too big", "version: STSv1\nmode: none\nmax_age: 1\n" + strings.Repeat("x: y\n", MaxPolicySize/5+1), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if tc.want == nil {
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("Parse = %+v, %v; want a syntax error", got, err)
				}
				return
			}
			if err != nil || got.Mode != tc.want.Mode || got.MaxAge != tc.want.MaxAge || strings.Join(got.MX, " ") != strings.Join(tc.want.MX, " ") {
				t.Fatalf("Parse = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	p := &Policy{MX: []string{"mail.example.com", "*.example.net"}}
	for host, want := range map[string]bool{
		"mail.example.com": true, "MAIL.Example.com.": true, "mx1.example.net": true,
		"example.net": false, "a.b.example.net": false, "other.example.com": false, "mail.example.com.evil": false,
		".example.net": false,
	} {
		if got := p.Match(host); got != want {
			t.Errorf("Match(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestParseTXT(t *testing.T) {
	for in, want := range map[string]string{
		"v=STSv1; id=20160831085700Z;":           "20160831085700Z",
		"v=STSv1;id=abc":                         "abc",
		"v=STSv1; ext=1; id=X9 ":                 "X9",
		"v=STSv1":                                "",
		"v=STSv1; id=":                           "",
		"v=STSv1; id=a-b":                        "",
		"id=abc; v=STSv1":                        "",
		"v=STSv1; id=" + strings.Repeat("a", 33): "",
		"v=STSv1; id=a; id=b":                    "",
	} {
		got, err := ParseTXT(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("ParseTXT(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// policyServer is a loopback HTTPS server playing mta-sts.<domain> with a certificate from the built-in CA.
type policyServer struct {
	srv   *httptest.Server
	roots *x509.CertPool
	mu    sync.Mutex // guards the fields below
	body  string
	ctype string
	code  int
	hits  int
}

func startPolicyServer(t *testing.T, names ...string) *policyServer {
	t.Helper()
	ca, err := pki.InitCA(t.TempDir(), pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(names, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ps := &policyServer{roots: x509.NewCertPool(), ctype: "text/plain; charset=utf-8", code: 200}
	ps.roots.AddCert(ca.Certificate())
	ps.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		ps.hits++
		if r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		if ps.code/100 == 3 {
			http.Redirect(w, r, "https://elsewhere.test/", ps.code)
			return
		}
		w.Header().Set("Content-Type", ps.ctype)
		w.WriteHeader(ps.code)
		w.Write([]byte(ps.body))
	}))
	ps.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are what some tests cause
	ps.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ps.srv.StartTLS()
	t.Cleanup(ps.srv.Close)
	return ps
}

func (ps *policyServer) set(code int, ctype, body string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.code, ps.ctype, ps.body = code, ctype, body
}

func (ps *policyServer) fetches() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.hits
}

const enforcePolicy = "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 3600\n"

func newCache(t *testing.T, ps *policyServer, res *dns.Fake, now *time.Time) *Cache {
	t.Helper()
	_, port, _ := net.SplitHostPort(ps.srv.Listener.Addr().String())
	res.IP["mta-sts.example.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	p, _ := strconv.Atoi(port)
	c, err := New(Options{Resolver: res, RootCAs: ps.roots, Port: p, Timeout: 10 * time.Second, Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCache walks a policy's life: fetched over HTTPS through the resolver, served from the cache while the TXT
// id stays, kept when a refresh fails, replaced when the id changes and the fetch works, dropped after max_age.
func TestCache(t *testing.T) {
	ps := startPolicyServer(t, "mta-sts.example.test")
	ps.set(200, "text/plain", enforcePolicy)
	res := &dns.Fake{IP: map[string][]netip.Addr{}, TXT: map[string][]string{"_mta-sts.example.test": {"v=STSv1; id=one"}}}
	now := time.Unix(1_700_000_000, 0)
	c := newCache(t, ps, res, &now)
	ctx := context.Background()

	p := c.Get(ctx, "Example.Test.")
	if p == nil || p.Mode != ModeEnforce || !p.Match("mx.example.test") {
		t.Fatalf("first Get = %+v", p)
	}
	if c.Get(ctx, "example.test") == nil || ps.fetches() != 1 {
		t.Fatalf("same id fetched again: %d fetches", ps.fetches())
	}
	// New id, broken server: the cached policy stays in force (RFC 8461 5.1).
	res.TXT["_mta-sts.example.test"] = []string{"v=STSv1; id=two"}
	ps.set(500, "text/plain", "")
	if p := c.Get(ctx, "example.test"); p == nil || p.Mode != ModeEnforce {
		t.Fatalf("failed refresh dropped the cached policy: %+v", p)
	}
	// TXT lookup fails: cached policy still used.
	res.Fail = map[string]bool{"_mta-sts.example.test": true}
	if c.Get(ctx, "example.test") == nil {
		t.Fatal("TXT failure dropped the cached policy")
	}
	res.Fail = nil
	// The fetch works again: the new policy replaces the old.
	ps.set(200, "text/plain", "version: STSv1\nmode: testing\nmx: *.example.test\nmax_age: 60\n")
	if p := c.Get(ctx, "example.test"); p == nil || p.Mode != ModeTesting {
		t.Fatalf("new id not fetched: %+v", p)
	}
	// Expired, and the domain no longer publishes: no policy.
	now = now.Add(61 * time.Second)
	delete(res.TXT, "_mta-sts.example.test")
	if p := c.Get(ctx, "example.test"); p != nil {
		t.Fatalf("expired policy still used: %+v", p)
	}
	// No TXT record at all: no policy, no fetch.
	n := ps.fetches()
	if p := c.Get(ctx, "other.test"); p != nil || ps.fetches() != n {
		t.Fatalf("domain without TXT: %+v after %d fetches", p, ps.fetches()-n)
	}
}

// TestFetchRefuses: redirects, wrong media types, errors, bad policies and certificates that do not verify are
// all failures; with nothing cached the domain is treated as having no policy.
func TestFetchRefuses(t *testing.T) {
	ps := startPolicyServer(t, "mta-sts.example.test")
	res := &dns.Fake{IP: map[string][]netip.Addr{}, TXT: map[string][]string{"_mta-sts.example.test": {"v=STSv1; id=one"}}}
	now := time.Now()
	c := newCache(t, ps, res, &now)
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		code        int
		ctype, body string
	}{
		{"redirect", 302, "text/plain", enforcePolicy},
		{"not found", 404, "text/plain", enforcePolicy},
		{"html", 200, "text/html", enforcePolicy},
		{"no type", 200, "", enforcePolicy},
		{"bad policy", 200, "text/plain", "version: STSv1\nmode: enforce\n"},
		{"too big", 200, "text/plain", enforcePolicy + strings.Repeat("#", MaxPolicySize)},
	} {
		ps.set(tc.code, tc.ctype, tc.body)
		if _, err := c.Fetch(ctx, "example.test"); err == nil {
			t.Errorf("%s: fetch succeeded", tc.name)
		}
		if p := c.Get(ctx, "example.test"); p != nil {
			t.Errorf("%s: Get = %+v", tc.name, p)
		}
	}
	// A certificate for another name does not verify for mta-sts.example.test.
	wrong := startPolicyServer(t, "www.example.test")
	wrong.set(200, "text/plain", enforcePolicy)
	c2 := newCache(t, wrong, res, &now)
	if _, err := c2.Fetch(ctx, "example.test"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("wrong certificate: %v", err)
	}
	// Two STSv1 records: no policy (RFC 8461 3.1).
	ps.set(200, "text/plain", enforcePolicy)
	res.TXT["_mta-sts.example.test"] = []string{"v=STSv1; id=a", "v=STSv1; id=b", "unrelated"}
	if p := c.Get(ctx, "example.test"); p != nil {
		t.Fatalf("two TXT records: %+v", p)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(enforcePolicy))
	f.Add([]byte("version: STSv1\r\nmode: none\r\nmax_age: 0\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if p.Mode != ModeEnforce && p.Mode != ModeTesting && p.Mode != ModeNone || p.MaxAge < 0 || p.MaxAge > MaxMaxAge {
			t.Fatalf("accepted a bad policy: %+v", p)
		}
		for _, mx := range p.MX {
			if !p.Match(strings.Replace(mx, "*", "x", 1)) {
				t.Fatalf("pattern %q does not match itself", mx)
			}
		}
	})
}

func FuzzParseTXT(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Fuzz(func(t *testing.T, s string) {
		if id, err := ParseTXT(s); err == nil && !validID(id) {
			t.Fatalf("bad id %q accepted", id)
		}
	})
}
