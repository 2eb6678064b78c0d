package tlsmgr

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/pki"
)

const host = "mail.example.org"

func serving(t *testing.T, cfg *tls.Config) *x509.Certificate {
	t.Helper()
	c, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: host})
	if err != nil || c == nil || c.Leaf == nil {
		t.Fatalf("GetCertificate: %v %v", c, err)
	}
	return c.Leaf
}

// writePair issues a certificate for hosts from ca and writes it to dir/name.crt and .key.
func writePair(t *testing.T, ca *pki.CA, dir, name string, validity time.Duration, hosts ...string) (string, string) {
	t.Helper()
	cert, key, err := ca.Issue(hosts, validity)
	if err != nil {
		t.Fatal(err)
	}
	cf, kf := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := pki.WriteFile(cf, cert, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteFile(kf, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return cf, kf
}

func TestBuiltInCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m, err := New(Options{DataDir: dir, Hostname: host})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	if m.TLSConfig().MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x", m.TLSConfig().MinVersion)
	}
	leaf := serving(t, m.TLSConfig())
	ca, err := pki.LoadCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatalf("built-in CA not created: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	for _, name := range []string{host, "localhost", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("certificate for %s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "tls", host+".key")); err != nil {
		t.Fatal(err)
	}
	// A second manager on the same dir reuses the certificate.
	m2, err := New(Options{DataDir: dir, Hostname: host})
	if err != nil {
		t.Fatal(err)
	}
	if serving(t, m2.TLSConfig()).SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatal("certificate issued again although still valid")
	}
}

func TestBuiltInRenewsExpiring(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writePair(t, ca, tlsDir, host, 10*24*time.Hour, host)
	m, err := New(Options{DataDir: dir, Hostname: host})
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(serving(t, m.TLSConfig()).NotAfter); left < RenewBefore {
		t.Fatalf("certificate expiring in %v was not renewed", left)
	}
	// A certificate that no longer covers the hostname is replaced too.
	writePair(t, ca, tlsDir, host, 365*24*time.Hour, "old.example.org")
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := serving(t, m.TLSConfig()).VerifyHostname(host); err != nil {
		t.Fatalf("certificate for another name kept: %v", err)
	}
}

// TestReloadSwapsForRunningListeners: a tls.Config obtained before Reload serves the new certificate after it,
// and a failed Reload keeps the old one.
func TestReloadSwapsForRunningListeners(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cf, kf := writePair(t, ca, dir, "live", time.Hour, host)
	m, err := New(Options{CertFile: cf, KeyFile: kf, Hostname: host})
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.TLSConfig()
	before := serving(t, cfg)
	writePair(t, ca, dir, "live", time.Hour, host)
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	after := serving(t, cfg)
	if before.SerialNumber.Cmp(after.SerialNumber) == 0 {
		t.Fatal("Reload did not swap the certificate")
	}
	if err := os.WriteFile(kf, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(); err == nil {
		t.Fatal("Reload accepted a broken key")
	}
	if serving(t, cfg).SerialNumber.Cmp(after.SerialNumber) != 0 {
		t.Fatal("a failed Reload changed the certificate")
	}
	// A real handshake over the shared config sees the current certificate.
	if got := handshake(t, cfg, ca); got.SerialNumber.Cmp(after.SerialNumber) != 0 {
		t.Fatal("handshake served another certificate")
	}
}

func handshake(t *testing.T, cfg *tls.Config, ca *pki.CA) *x509.Certificate {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		_ = tls.Server(a, cfg).Handshake()
	}()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	c := tls.Client(b, &tls.Config{ServerName: host, RootCAs: pool})
	if err := c.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return c.ConnectionState().PeerCertificates[0]
}

func TestCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good, goodKey := writePair(t, ca, dir, "good", time.Hour, host)
	other, otherKey := writePair(t, ca, dir, "other", time.Hour, "other.example.org")
	tests := []struct {
		name, cert, key, want string
	}{
		{"good", good, goodKey, ""},
		{"wrong host", other, otherKey, "does not cover hostname " + host},
		{"key mismatch", good, otherKey, "private key does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Manager{opts: Options{CertFile: tt.cert, KeyFile: tt.key, Hostname: host}}
			err := m.Check()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Check: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Check = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := New(Options{CertFile: good, KeyFile: otherKey, Hostname: host}); err == nil {
		t.Error("New accepted a key that does not match")
	}
}

func TestCheckExpired(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := pki.InitCA(filepath.Join(dir, "ca"), pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A validity of one second: expired after a short wait.
	cf, kf := writePair(t, ca, dir, "old", time.Second, host)
	time.Sleep(1100 * time.Millisecond)
	m := &Manager{opts: Options{CertFile: cf, KeyFile: kf, Hostname: host}}
	if err := m.Check(); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Check of an expired certificate = %v", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{
		{CertFile: "x.crt", Hostname: host},
		{DataDir: "", Hostname: host},
		{DataDir: t.TempDir(), Hostname: "../etc"},
		{DataDir: t.TempDir(), Hostname: ""},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}
