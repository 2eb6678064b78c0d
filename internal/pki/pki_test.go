package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestIssueChainsToCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := InitCA(dir, CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	again, err := InitCA(dir, CAOptions{})
	if err != nil || string(again.CertPEM()) != string(ca.CertPEM()) {
		t.Fatal("InitCA is not idempotent")
	}
	if fi, _ := os.Stat(filepath.Join(dir, "ca.key")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode %v", fi.Mode())
	}
	certPEM, keyPEM, err := ca.Issue([]string{"mail.example.org", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("key pair: %v", err)
	}
	b, _ := pem.Decode(certPEM)
	leaf, _ := x509.ParseCertificate(b.Bytes)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM())
	for _, name := range []string{"mail.example.org", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example.org", Roots: pool}); err == nil {
		t.Error("certificate valid for a name it was not issued for")
	}
	// openssl, the tool the seeds used by hand, must agree.
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl missing in CI")
		}
		t.Skip("openssl not installed")
	}
	leafFile := filepath.Join(dir, "leaf.pem")
	os.WriteFile(leafFile, pem.EncodeToMemory(b), 0o644)
	out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(dir, "ca.crt"), leafFile).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
}
