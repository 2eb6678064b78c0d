package tlsmgr

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/postern/postern/internal/pki"
)

func TestBuiltInCAAndReload(t *testing.T) {
	dir := t.TempDir()
	m, err := New(Options{DataDir: dir, Hostname: "mail.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	c1, _ := m.TLSConfig().GetCertificate(&tls.ClientHelloInfo{})
	// A second manager on the same dir reuses the certificate.
	m2, _ := New(Options{DataDir: dir, Hostname: "mail.example.org"})
	c2, _ := m2.TLSConfig().GetCertificate(&tls.ClientHelloInfo{})
	if c1.Leaf.SerialNumber.Cmp(c2.Leaf.SerialNumber) != 0 {
		t.Fatal("certificate re-issued although still valid")
	}
	if m3, _ := New(Options{DataDir: dir, Hostname: "mail.example.org", CertFile: filepath.Join(dir, "tls", "mail.example.org.crt"), KeyFile: filepath.Join(dir, "tls", "mail.example.org.key")}); m3 == nil {
		t.Fatal("explicit files")
	}
	// Swap files and reload.
	ca, _ := pki.LoadCA(filepath.Join(dir, "ca"))
	cert, key, _ := ca.Issue([]string{"other.example.org"}, time.Hour)
	cf, kf := filepath.Join(dir, "x.crt"), filepath.Join(dir, "x.key")
	os.WriteFile(cf, cert, 0o644)
	os.WriteFile(kf, key, 0o600)
	m4, err := New(Options{CertFile: cf, KeyFile: kf, Hostname: "mail.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m4.Check(); err == nil {
		t.Fatal("Check accepted a certificate for another host")
	}
	before, _ := m4.TLSConfig().GetCertificate(nil)
	cert, key, _ = ca.Issue([]string{"mail.example.org"}, time.Hour)
	os.WriteFile(cf, cert, 0o644)
	os.WriteFile(kf, key, 0o600)
	if err := m4.Reload(); err != nil {
		t.Fatal(err)
	}
	after, _ := m4.TLSConfig().GetCertificate(nil)
	if before.Leaf.SerialNumber.Cmp(after.Leaf.SerialNumber) == 0 {
		t.Fatal("Reload did not swap the certificate")
	}
	if err := m4.Check(); err != nil {
		t.Fatal(err)
	}
}
