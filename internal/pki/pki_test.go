package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func newCA(t *testing.T) (*CA, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := InitCA(dir, CAOptions{CommonName: "Test CA"})
	if err != nil {
		t.Fatal(err)
	}
	return ca, dir
}

func leafOf(t *testing.T, certPEM []byte) (*x509.Certificate, []byte) {
	t.Helper()
	b, rest := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("no PEM block in issued certificate")
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return leaf, rest
}

func TestInitCAIdempotentAndPrivate(t *testing.T) {
	t.Parallel()
	ca, dir := newCA(t)
	again, err := InitCA(dir, CAOptions{CommonName: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.CertPEM(), ca.CertPEM()) {
		t.Fatal("InitCA replaced an existing CA")
	}
	for name, want := range map[string]os.FileMode{KeyFileName: 0o600, CertFileName: 0o644, ".": 0o700} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	if c := ca.Certificate(); !c.IsCA || c.Subject.CommonName != "Test CA" {
		t.Errorf("CA certificate: IsCA=%v CN=%q", c.IsCA, c.Subject.CommonName)
	}
	// No temp files left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("CA dir holds %d entries, want 2", len(ents))
	}
}

func TestInitCAKeepsLoneKey(t *testing.T) {
	t.Parallel()
	_, dir := newCA(t)
	if err := os.Remove(filepath.Join(dir, CertFileName)); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(dir, KeyFileName))
	if _, err := InitCA(dir, CAOptions{}); err == nil {
		t.Fatal("InitCA succeeded with a key but no certificate")
	}
	if now, _ := os.ReadFile(filepath.Join(dir, KeyFileName)); !bytes.Equal(now, key) {
		t.Fatal("InitCA overwrote an existing key")
	}
}

func TestLoadCAErrors(t *testing.T) {
	t.Parallel()
	if _, err := LoadCA(t.TempDir()); err == nil {
		t.Error("LoadCA of an empty dir succeeded")
	}
	_, dir1 := newCA(t)
	_, dir2 := newCA(t)
	key2, _ := os.ReadFile(filepath.Join(dir2, KeyFileName))
	if err := os.WriteFile(filepath.Join(dir1, KeyFileName), key2, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(dir1); err == nil {
		t.Error("LoadCA accepted a key of another CA")
	}
}

func TestIssueChainsToCA(t *testing.T) {
	t.Parallel()
	ca, _ := newCA(t)
	certPEM, keyPEM, err := ca.Issue([]string{"Mail.Example.org", "127.0.0.1", "::1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("key pair: %v", err)
	}
	leaf, rest := leafOf(t, certPEM)
	if !bytes.Equal(rest, ca.CertPEM()) {
		t.Error("the chain does not end with the CA certificate after the leaf")
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.IsCA {
		t.Errorf("leaf EKU %v IsCA %v", leaf.ExtKeyUsage, leaf.IsCA)
	}
	if got := time.Until(leaf.NotAfter); got > time.Hour || got < 50*time.Minute {
		t.Errorf("leaf valid for %v more, want about 1h", got)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM())
	for _, name := range []string{"mail.example.org", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IP SANs %v", leaf.IPAddresses)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example.org", Roots: pool}); err == nil {
		t.Error("certificate valid for a name it was not issued for")
	}
	other, _ := newCA(t)
	otherPool := x509.NewCertPool()
	otherPool.AppendCertsFromPEM(other.CertPEM())
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "mail.example.org", Roots: otherPool}); err == nil {
		t.Error("certificate verified against another CA")
	}
}

func TestIssueLimits(t *testing.T) {
	t.Parallel()
	ca, _ := newCA(t)
	for _, hosts := range [][]string{nil, {""}, {"bad host"}, {"mail.example.org", "-x.example.org"}, {"a..b"}} {
		if _, _, err := ca.Issue(hosts, time.Hour); err == nil {
			t.Errorf("Issue(%q) succeeded", hosts)
		}
	}
	certPEM, _, err := ca.Issue([]string{"mail.example.org"}, 100*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if leaf, _ := leafOf(t, certPEM); leaf.NotAfter.After(ca.Certificate().NotAfter) {
		t.Error("leaf outlives its CA")
	}
	certPEM, _, err = ca.Issue([]string{"mail.example.org"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if leaf, _ := leafOf(t, certPEM); time.Until(leaf.NotAfter) < DefaultLeafValidity-2*time.Hour {
		t.Errorf("default validity ends %v", leaf.NotAfter)
	}
}

// TestOpenSSLVerify: openssl, the tool the seeds used by hand, must accept the chain too.
func TestOpenSSLVerify(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl missing in CI")
		}
		t.Skip("openssl not installed")
	}
	ca, dir := newCA(t)
	certPEM, _, err := ca.Issue([]string{"mail.example.org"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leafFile := filepath.Join(t.TempDir(), "leaf.pem")
	if err := os.WriteFile(leafFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, CertFileName)
	out, err := exec.Command("openssl", "verify", "-purpose", "sslserver", "-CAfile", caFile, leafFile).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	// And it must reject a leaf from another CA.
	other, _ := newCA(t)
	foreign, _, _ := other.Issue([]string{"mail.example.org"}, time.Hour)
	if err := os.WriteFile(leafFile, foreign, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("openssl", "verify", "-CAfile", caFile, leafFile).CombinedOutput(); err == nil {
		t.Fatalf("openssl verified a foreign certificate:\n%s", out)
	}
}

func TestWriteFileReplaces(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "f")
	for _, s := range []string{"one", "two"} {
		if err := WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != s {
			t.Fatalf("read %q, want %q", b, s)
		}
	}
	if err := WriteFile(filepath.Join(path, "x"), nil, 0o600); err == nil {
		t.Fatal("WriteFile under a file succeeded")
	}
}
