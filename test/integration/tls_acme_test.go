//go:build integration

package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pebbleVersion is the Pebble release the ACME tests run (Let's Encrypt's test CA, a Go module).
const pebbleVersion = "v2.10.1"

// buildPebble installs pebble and pebble-challtestsrv from the module proxy into a temporary directory (outside
// this module, so go.mod is untouched) and returns that directory.
func buildPebble(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	cmd := exec.Command("go", "install",
		"github.com/letsencrypt/pebble/v2/cmd/pebble@"+pebbleVersion,
		"github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@"+pebbleVersion)
	cmd.Dir = bin
	cmd.Env = append(os.Environ(), "GOBIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("go install pebble: %v\n%s", err, out)
		}
		t.Skipf("cannot build pebble (no module proxy?): %v\n%s", err, out)
	}
	return bin
}

// pebble is one running Pebble with its DNS (pebble-challtestsrv answering 127.0.0.1 for every name).
type pebble struct {
	dir      string // directory URL
	caFile   string // trust for Pebble's own HTTPS (tls.acme.ca_file)
	mgmt     string // management address (roots)
	httpRoot *http.Client
}

// selfSigned writes a self-signed ECDSA certificate for 127.0.0.1 and localhost (Pebble's HTTPS) to dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebble"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "pebble.crt"), filepath.Join(dir, "pebble.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// startPebble runs Pebble validating http-01 on httpPort and tls-alpn-01 on tlsPort of 127.0.0.1, issuing
// certificates valid for validity.
func startPebble(t *testing.T, bin string, httpPort, tlsPort int, validity time.Duration) *pebble {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	dnsPort, listen, mgmt := freePort(t), freePort(t), freePort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           fmt.Sprintf("127.0.0.1:%d", listen),
		"managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmt),
		"certificate":             certFile, "privateKey": keyFile,
		"httpPort": httpPort, "tlsPort": tlsPort,
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles": map[string]any{"default": map[string]any{"description": "test",
			"validityPeriod": int(validity.Seconds())}},
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
		log := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("%s log:\n%s", name, log)
			}
		})
	}
	run("pebble-challtestsrv", "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort), "-defaultIPv4", "127.0.0.1",
		"-defaultIPv6", "", "-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "",
		"-management", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	run("pebble", "-config", cfgFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))
	p := &pebble{dir: fmt.Sprintf("https://127.0.0.1:%d/dir", listen), caFile: certFile,
		mgmt: fmt.Sprintf("127.0.0.1:%d", mgmt),
		httpRoot: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: tlsPool(t, certFile)}}}}
	tlsWaitFor(t, func() bool {
		resp, err := p.httpRoot.Get(p.dir)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	return p
}

// roots returns Pebble's current issuing root (it makes a new one at every start).
func (p *pebble) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	resp, err := p.httpRoot.Get("https://" + p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble root: %s", b)
	}
	return pool
}

// tryLeaf is tlsLeaf that reports a failed verification instead of failing the test.
func tryLeaf(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// TestTLSACMEPebble: with [tls.acme] pointing at Pebble on loopback, the server first serves its built-in CA's
// certificate, obtains one from Pebble (http-01 on listen.http, or tls-alpn-01 on an implicit-TLS port) without a
// restart, renews it ahead of expiry (Pebble issues 45-second certificates here), caches account and certificate
// under data_dir/acme, and serves the cached one at once after a restart.
func TestTLSACMEPebble(t *testing.T) {
	bin := buildPebble(t)
	for _, challenge := range []string{"http-01", "tls-alpn-01"} {
		t.Run(challenge, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, serverOptions{})
			p := startPebble(t, bin, s.ports.HTTP, s.ports.Submissions, 45*time.Second)
			s.reconfigure(func(cfg string) string {
				cfg = strings.Replace(cfg, "http = []", fmt.Sprintf(`http = ["127.0.0.1:%d"]`, s.ports.HTTP), 1)
				return cfg + fmt.Sprintf("\n[tls]\ncheck_interval = \"1s\"\n\n[tls.acme]\ndirectory = %s\nca_file = %s\n"+
					"email = \"postmaster@example.test\"\nchallenge = %q\n", tomlQuote(p.dir), tomlQuote(p.caFile), challenge)
			})
			addr := s.addr(s.ports.Submissions)
			roots := p.roots(t)
			var first *x509.Certificate
			tlsWaitFor(t, func() bool {
				first, _ = tryLeaf(addr, "mail.example.test", roots)
				return first != nil
			})
			// Renewal ahead of expiry, without a restart: a new certificate before the first one expires.
			var second *x509.Certificate
			tlsWaitFor(t, func() bool {
				c, err := tryLeaf(addr, "mail.example.test", roots)
				if err == nil && c.SerialNumber.Cmp(first.SerialNumber) != 0 {
					second = c
				}
				return second != nil
			})
			if !second.NotBefore.Before(first.NotAfter) {
				t.Errorf("renewed only after expiry: first until %v, second from %v", first.NotAfter, second.NotBefore)
			}
			acmeDir := filepath.Join(s.dir, "data", "acme")
			for name, mode := range map[string]os.FileMode{"account.key": 0o600, "mail.example.test.key": 0o600, "mail.example.test.crt": 0o644} {
				fi, err := os.Stat(filepath.Join(acmeDir, name))
				if err != nil || fi.Mode().Perm() != mode {
					t.Errorf("%s: %v %v; want mode %v", name, fi, err, mode)
				}
			}
			if log := s.stderr.String(); !strings.Contains(log, "ACME certificate obtained") {
				t.Errorf("no issuance logged:\n%s", log)
			}
			// The cached certificate is served right after a restart.
			s.stop()
			s.start()
			if _, err := tryLeaf(addr, "mail.example.test", roots); err != nil {
				t.Errorf("after a restart the cached ACME certificate is not served: %v", err)
			}
		})
	}
}
