package tlsmgr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/postern/postern/internal/pki"
)

// dialHello runs a real handshake against cfg with the given client settings; it returns the server's leaf or
// the handshake error.
func dialHello(t *testing.T, cfg *tls.Config, client *tls.Config) (*x509.Certificate, error) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		s := tls.Server(a, cfg)
		_ = s.Handshake()
		s.Close()
	}()
	c := tls.Client(b, client)
	if err := c.Handshake(); err != nil {
		return nil, err
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	m, err := New(Options{DataDir: t.TempDir(), Hostname: host})
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.TLSConfig()
	for _, tt := range []struct {
		name   string
		client *tls.Config
		ok     bool
	}{
		{"TLS 1.3", &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}, true},
		{"TLS 1.2 AEAD", &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}}, true},
		{"TLS 1.1", &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false},
		{"TLS 1.2 CBC only", &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, false},
		{"TLS 1.2 CBC-SHA256 only", &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}}, false},
	} {
		if _, err := dialHello(t, cfg, tt.client); (err == nil) != tt.ok {
			t.Errorf("%s: handshake error %v; want ok=%v", tt.name, err, tt.ok)
		}
	}
	for _, s := range cfg.CipherSuites {
		name := tls.CipherSuiteName(s)
		if !strings.Contains(name, "ECDHE") || !(strings.Contains(name, "GCM") || strings.Contains(name, "CHACHA20")) {
			t.Errorf("suite %s is not ECDHE with AEAD", name)
		}
	}
	// Below TLS 1.2 only with the explicit flag, which also brings the CBC suites those versions need.
	if _, err := New(Options{DataDir: t.TempDir(), Hostname: host, MinVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 minimum accepted without AllowInsecureVersions")
	}
	old, err := New(Options{DataDir: t.TempDir(), Hostname: host, MinVersion: tls.VersionTLS11, AllowInsecureVersions: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialHello(t, old.TLSConfig(), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS11,
		MaxVersion: tls.VersionTLS11}); err != nil {
		t.Errorf("TLS 1.1 refused with AllowInsecureVersions: %v", err)
	}
}

// TestSNIBuiltIn: with tls.names the built-in CA issues one certificate per name and the handshake serves the one
// the client asked for; no SNI (or an unknown name) gets the hostname's.
func TestSNIBuiltIn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m, err := New(Options{DataDir: dir, Hostname: host, Names: []string{"mail.example.net", "imap.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	ca, _ := pki.LoadCA(filepath.Join(dir, "ca"))
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	for sni, want := range map[string]string{
		host: host, "mail.example.net": "mail.example.net", "IMAP.example.com.": "imap.example.com",
		"": host, "unknown.example.org": host,
	} {
		leaf, err := dialHello(t, m.TLSConfig(), &tls.Config{ServerName: sni, RootCAs: pool, InsecureSkipVerify: sni == "" || sni == "unknown.example.org"})
		if err != nil {
			t.Fatalf("SNI %q: %v", sni, err)
		}
		if leaf.Subject.CommonName != want {
			t.Errorf("SNI %q: got the certificate of %s; want %s", sni, leaf.Subject.CommonName, want)
		}
	}
}

// TestSNIFiles: extra certificate files are chosen by the names they cover, wildcards included.
func TestSNIFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cf, kf := writePair(t, ca, dir, "main", time.Hour, host)
	c2, k2 := writePair(t, ca, dir, "net", time.Hour, "mail.example.net", "smtp.example.net")
	c3, k3 := writePair(t, ca, dir, "wild", time.Hour, "*.example.com")
	m, err := New(Options{CertFile: cf, KeyFile: kf, Hostname: host, Names: []string{"smtp.example.net", "a.example.com"},
		Certificates: []CertPair{{c2, k2}, {c3, k3}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	for sni, want := range map[string]string{"smtp.example.net": "mail.example.net", "a.example.com": "*.example.com",
		"b.a.example.com": host, "": host} {
		if got := m.certificate(sni).Leaf.Subject.CommonName; got != want {
			t.Errorf("SNI %q: %s; want %s", sni, got, want)
		}
	}
	m2, _ := New(Options{CertFile: cf, KeyFile: kf, Hostname: host, Names: []string{"other.example.org"}})
	if err := m2.Check(); err == nil || !strings.Contains(err.Error(), "other.example.org") {
		t.Errorf("Check with an uncovered name: %v", err)
	}
}

// TestRunReloadsChangedFiles: replacing the certificate files is noticed without SIGHUP, and a built-in CA
// certificate that falls due is renewed, both by Run.
func TestRunReloadsChangedFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cf, kf := writePair(t, ca, dir, "live", time.Hour, host)
	m, err := New(Options{CertFile: cf, KeyFile: kf, Hostname: host, CheckInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	before := m.certificate(host).Leaf.SerialNumber
	writePair(t, ca, dir, "live", 2*time.Hour, host)
	waitFor(t, func() bool { return m.certificate(host).Leaf.SerialNumber.Cmp(before) != 0 })

	// Built-in CA: a certificate expiring within RenewBefore is replaced by the loop.
	dir2 := t.TempDir()
	m2, err := New(Options{DataDir: dir2, Hostname: host, CheckInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ca2, _ := pki.LoadCA(filepath.Join(dir2, "ca"))
	short := m2.set.Load()
	writePair(t, ca2, filepath.Join(dir2, "tls"), host, 10*24*time.Hour, host) // due for renewal
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() { m2.Run(ctx2); close(done2) }()
	defer func() { cancel2(); <-done2 }()
	waitFor(t, func() bool {
		c := m2.certificate(host).Leaf
		return c.SerialNumber.Cmp(short.def.Leaf.SerialNumber) != 0 && time.Until(c.NotAfter) > RenewBefore
	})
}

// waitFor polls cond; the deadline only stops a broken test.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestACMEChallenges: the http-01 handler and the tls-alpn-01 config answer only pending challenges.
func TestACMEChallenges(t *testing.T) {
	t.Parallel()
	m, err := New(Options{DataDir: t.TempDir(), Hostname: host,
		ACME: &ACMEOptions{Directory: "https://acme.invalid/directory"}})
	if err != nil {
		t.Fatal(err)
	}
	m.acme.tokens["/.well-known/acme-challenge/tok"] = "tok.thumb"
	srv := httptest.NewServer(m.HTTPHandler(nil))
	defer srv.Close()
	for path, want := range map[string]int{"/.well-known/acme-challenge/tok": 200, "/.well-known/acme-challenge/x": 404, "/": 404} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d; want %d", path, resp.StatusCode, want)
		}
	}
	// No challenge pending: an acme-tls/1 hello fails; a mail client's hello is unaffected.
	if _, err := m.configForClient(&tls.ClientHelloInfo{ServerName: host, SupportedProtos: []string{acme.ALPNProto}}); err == nil {
		t.Error("acme-tls/1 hello answered without a pending challenge")
	}
	if c, err := m.configForClient(&tls.ClientHelloInfo{ServerName: host, SupportedProtos: []string{"imap"}}); c != nil || err != nil {
		t.Errorf("mail client hello: %v %v", c, err)
	}
	if _, err := dialHello(t, m.TLSConfig(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"smtp"}}); err != nil {
		t.Errorf("a client offering ALPN smtp: %v", err)
	}
	// Cached ACME certificates are served at once after a restart.
	acmeDir := filepath.Join(m.opts.DataDir, "acme")
	ca, _ := pki.LoadCA(filepath.Join(m.opts.DataDir, "ca"))
	if err := os.MkdirAll(acmeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writePair(t, ca, acmeDir, host, 90*24*time.Hour, host)
	m2, err := New(Options{DataDir: m.opts.DataDir, Hostname: host, ACME: &ACMEOptions{Directory: "https://acme.invalid/directory"}})
	if err != nil {
		t.Fatal(err)
	}
	if m2.acme.get(host) == nil || m2.certificate("") != m2.acme.get(host) || m2.certificate(host) != m2.acme.get(host) {
		t.Error("the cached ACME certificate is not served")
	}
}
