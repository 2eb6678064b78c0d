//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tlsPort is one TLS-capable port of a server: STARTTLS (openssl's -starttls protocol name) or implicit TLS.
type tlsPort struct {
	name     string
	port     int
	starttls string // "" for implicit TLS
	wired    bool   // checked for a listener first (IMAP and POP3 are wired in by other engineers)
}

func allTLSPorts(s *server) []tlsPort {
	return []tlsPort{
		{"smtp", s.ports.SMTP, "smtp", false},
		{"submission", s.ports.Submission, "smtp", false},
		{"submissions", s.ports.Submissions, "", false},
		{"imap", s.ports.IMAP, "imap", true},
		{"imaps", s.ports.IMAPS, "", true},
		{"pop3", s.ports.POP3, "pop3", true},
		{"pop3s", s.ports.POP3S, "", true},
	}
}

// opensslSClient runs openssl s_client against a port with extra arguments and returns its output and error.
func opensslSClient(t *testing.T, s *server, p tlsPort, args ...string) (string, error) {
	t.Helper()
	bin := needTool(t, "openssl")
	full := []string{"s_client", "-connect", s.addr(p.port)}
	if p.starttls != "" {
		full = append(full, "-starttls", p.starttls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(full, args...)...)
	cmd.Stdin = strings.NewReader("") // EOF at once: s_client closes after the handshake
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestTLSOpenSSLEveryPort: openssl s_client on every port (STARTTLS for smtp, submission, imap and pop3; implicit
// TLS for submissions, imaps and pop3s) verifies the chain against `postern ca cert` and the host name; TLS 1.1,
// and TLS 1.2 with a CBC (non-AEAD) suite, are refused.
func TestTLSOpenSSLEveryPort(t *testing.T) {
	s := newServer(t, serverOptions{imap: true, pop: true})
	ca := s.trustedCA()
	for _, p := range allTLSPorts(s) {
		t.Run(p.name, func(t *testing.T) {
			if p.wired {
				requireListening(t, s, p.name, p.port)
			}
			out, err := opensslSClient(t, s, p, "-CAfile", ca, "-verify_return_error", "-verify_hostname", "mail.example.test",
				"-servername", "mail.example.test")
			if err != nil || !strings.Contains(out, "Verify return code: 0 (ok)") {
				t.Fatalf("chain not verified: %v\n%s", err, out)
			}
			if !regexp.MustCompile(`Protocol\s*: TLSv1\.3`).MatchString(out) {
				t.Errorf("not TLS 1.3:\n%s", out)
			}
			// SECLEVEL=0 lets OpenSSL 3 itself offer TLS 1.1: the refusal must come from the server.
			out, err = opensslSClient(t, s, p, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
			if err == nil || !strings.Contains(out, "no peer certificate available") || !strings.Contains(out, "alert protocol version") {
				t.Errorf("TLS 1.1 accepted:\n%s", out)
			}
			out, err = opensslSClient(t, s, p, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA256:AES128-GCM-SHA256")
			if err == nil || !strings.Contains(out, "no peer certificate available") {
				t.Errorf("TLS 1.2 with a CBC or non-ECDHE suite accepted:\n%s", out)
			}
			out, err = opensslSClient(t, s, p, "-tls1_2", "-CAfile", ca, "-verify_return_error")
			if err != nil || !strings.Contains(out, "ECDHE-ECDSA-") || !strings.Contains(out, "GCM") && !strings.Contains(out, "CHACHA20") {
				t.Errorf("TLS 1.2 with an AEAD suite refused: %v\n%s", err, out)
			}
		})
	}
}

// tlsLeaf connects with SNI name over implicit TLS and returns the server's leaf certificate, verified against
// roots for that name.
func tlsLeaf(t *testing.T, addr, name string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		t.Fatalf("TLS to %s as %s: %v", addr, name, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func tlsPool(t *testing.T, pemFile string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("%s holds no certificate", pemFile)
	}
	return p
}

// TestTLSSNITwoNames: with tls.names one listener serves, per SNI name, a certificate for exactly that name;
// openssl verifies each against `postern ca cert`.
func TestTLSSNITwoNames(t *testing.T) {
	s := newServer(t, serverOptions{})
	s.addTLS(`names = ["smtp.example.net", "mx.example.org"]`)
	ca := s.trustedCA()
	roots := tlsPool(t, ca)
	for _, name := range []string{"mail.example.test", "smtp.example.net", "mx.example.org"} {
		if cn := tlsLeaf(t, s.addr(s.ports.Submissions), name, roots).Subject.CommonName; cn != name {
			t.Errorf("SNI %s: certificate for %s", name, cn)
		}
		p := tlsPort{"submission", s.ports.Submission, "smtp", false}
		out, err := opensslSClient(t, s, p, "-CAfile", ca, "-verify_return_error", "-verify_hostname", name, "-servername", name)
		if err != nil || !strings.Contains(out, "Verify return code: 0 (ok)") || !strings.Contains(out, "CN = "+name) {
			t.Errorf("openssl STARTTLS with SNI %s: %v\n%s", name, err, out)
		}
	}
	if out := s.run("check"); !strings.Contains(out, "ok") {
		t.Errorf("postern check: %s", out)
	}
}

// opensslCert makes an RSA key and a certificate for host signed by the built-in CA with `openssl x509 -req`, as
// the seeds do, and returns the two file names.
func opensslCert(t *testing.T, s *server, dir, name, host string) (string, string) {
	t.Helper()
	bin := needTool(t, "openssl")
	caDir := filepath.Join(s.dir, "data", "ca")
	key, csr, crt, ext := filepath.Join(dir, name+".key"), filepath.Join(dir, name+".csr"), filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".ext")
	if err := os.WriteFile(ext, []byte("subjectAltName = DNS:"+host+"\nextendedKeyUsage = serverAuth\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + host},
		{"x509", "-req", "-in", csr, "-CA", filepath.Join(caDir, "ca.crt"), "-CAkey", filepath.Join(caDir, "ca.key"),
			"-CAcreateserial", "-days", "30", "-sha256", "-extfile", ext, "-out", crt},
	} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", args[0], err, out)
		}
	}
	return crt, key
}

// TestTLSReloadKeepsSession: certificate files made with openssl (RSA) are served; replacing them is picked up on
// SIGHUP and, without a signal, when the files change; a session opened before keeps working throughout.
func TestTLSReloadKeepsSession(t *testing.T) {
	s := newServer(t, serverOptions{})
	s.addUser("alice@example.test", "alice-secret")
	dir := t.TempDir()
	live, liveKey := filepath.Join(dir, "live.crt"), filepath.Join(dir, "live.key")
	install := func(name string) string {
		crt, key := opensslCert(t, s, dir, name, "mail.example.test")
		for src, dst := range map[string]string{crt: live, key: liveKey} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst+".tmp", b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(dst+".tmp", dst); err != nil { // as certbot and `install` do: atomically
				t.Fatal(err)
			}
		}
		return tlsFileSerial(t, crt)
	}
	first := install("one")
	s.addTLS("cert_file = "+tomlQuote(live), "key_file = "+tomlQuote(liveKey), `check_interval = "1s"`)
	roots := tlsPool(t, s.trustedCA())
	serial := func() string {
		return tlsLeaf(t, s.addr(s.ports.Submissions), "mail.example.test", roots).SerialNumber.String()
	}
	if got := serial(); got != first {
		t.Fatalf("serving serial %s, want the file's %s", got, first)
	}
	if k := tlsLeaf(t, s.addr(s.ports.Submissions), "mail.example.test", roots).PublicKeyAlgorithm; k != x509.RSA {
		t.Errorf("key algorithm %v, want RSA", k)
	}

	// A session in flight: STARTTLS and AUTH before the reloads, mail after them.
	old := dial(t, s.addr(s.ports.Submission))
	old.expect(220)
	old.send("EHLO client.test")
	old.expect(250)
	old.starttls()
	old.send("EHLO client.test")
	old.expect(250)
	old.send("AUTH PLAIN " + plain("alice@example.test", "alice-secret"))
	old.expect(235)

	second := install("two")
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	tlsWaitFor(t, func() bool { return serial() == second })
	third := install("three") // no signal: the file check notices
	tlsWaitFor(t, func() bool { return serial() == third })

	old.send("NOOP")
	old.expect(250)
	old.send("MAIL FROM:<alice@example.test>")
	old.expect(250)
	old.send("RCPT TO:<alice@example.test>")
	old.expect(250)
	old.send("DATA")
	old.expect(354)
	old.send("Subject: across reloads\r\n\r\nstill here\r\n.")
	old.expect(250)
	old.send("QUIT")
	old.expect(221)
	s.waitInbox("alice@example.test", 1)
}

func tlsFileSerial(t *testing.T, pemFile string) string {
	t.Helper()
	c, err := tls.LoadX509KeyPair(pemFile, strings.TrimSuffix(pemFile, ".crt")+".key")
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf.SerialNumber.String()
}

// tlsWaitFor polls cond; the deadline only stops a broken test (no timing is asserted).
func tlsWaitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestTLSTestssl: testssl.sh (the Debian package) finds no weak protocol or cipher on any port: SSLv2, SSLv3,
// TLS 1.0 and 1.1 not offered, no NULL, anonymous, export, low, 3DES/IDEA or "average" (CBC) cipher, and no finding
// rated LOW or worse in its protocol, cipher category and forward-secrecy checks.
func TestTLSTestssl(t *testing.T) {
	bin := needTool(t, "testssl")
	s := newServer(t, serverOptions{imap: true, pop: true})
	for _, p := range allTLSPorts(s) {
		t.Run(p.name, func(t *testing.T) {
			if p.wired {
				requireListening(t, s, p.name, p.port)
			}
			t.Parallel()
			jsonFile := filepath.Join(t.TempDir(), "testssl.json")
			args := []string{"--quiet", "--color", "0", "--warnings", "off", "-p", "-s", "-f", "--jsonfile", jsonFile}
			if p.starttls != "" {
				args = append(args, "--starttls", p.starttls)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, append(args, s.addr(p.port))...).CombinedOutput()
			b, rerr := os.ReadFile(jsonFile)
			if rerr != nil {
				t.Fatalf("testssl: %v %v\n%s", err, rerr, out)
			}
			var findings []struct{ ID, Severity, Finding string }
			if err := json.Unmarshal(b, &findings); err != nil {
				t.Fatalf("testssl JSON: %v\n%s", err, b)
			}
			mustNot := map[string]bool{"SSLv2": true, "SSLv3": true, "TLS1": true, "TLS1_1": true, "cipherlist_NULL": true,
				"cipherlist_aNULL": true, "cipherlist_EXPORT": true, "cipherlist_LOW": true, "cipherlist_3DES_IDEA": true,
				"cipherlist_AVERAGE": true}
			seen := 0
			for _, f := range findings {
				switch {
				case f.ID == "scanProblem" || f.Severity == "FATAL":
					t.Errorf("testssl could not scan: %s", f.Finding)
				case mustNot[f.ID]:
					seen++
					if f.Finding != "not offered" {
						t.Errorf("%s: %s (%s)", f.ID, f.Finding, f.Severity)
					}
				case f.Severity == "LOW" || f.Severity == "MEDIUM" || f.Severity == "HIGH" || f.Severity == "CRITICAL":
					t.Errorf("%s: %s (%s)", f.ID, f.Finding, f.Severity)
				}
			}
			if seen != len(mustNot) {
				t.Errorf("testssl reported %d of the %d protocol and cipher checks:\n%s", seen, len(mustNot), b)
			}
		})
	}
}
