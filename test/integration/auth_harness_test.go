//go:build integration

package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// reconfigure rewrites the running server's config with edit and restarts it. newServer writes one [auth] table
// (allow_plaintext, lockout_failures) and no [tls] table; setAuth and addTLS below build on that.
func (s *server) reconfigure(edit func(cfg string) string) {
	s.t.Helper()
	b, err := os.ReadFile(s.config)
	if err != nil {
		s.t.Fatal(err)
	}
	s.stop()
	if err := os.WriteFile(s.config, []byte(edit(string(b))), 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.start()
}

// setAuth sets keys of the [auth] table (replacing a key already there) and restarts the server.
func (s *server) setAuth(keys map[string]string) {
	s.t.Helper()
	s.reconfigure(func(cfg string) string {
		for k, v := range keys {
			re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(k) + ` = .*$`)
			if re.MatchString(cfg) {
				cfg = re.ReplaceAllLiteralString(cfg, k+" = "+v)
				continue
			}
			cfg = strings.Replace(cfg, "[auth]\n", "[auth]\n"+k+" = "+v+"\n", 1)
		}
		return cfg
	})
}

// addTLS appends a [tls] table with the given lines and restarts the server.
func (s *server) addTLS(lines ...string) {
	s.t.Helper()
	s.reconfigure(func(cfg string) string { return cfg + "\n[tls]\n" + strings.Join(lines, "\n") + "\n" })
}

// trustedCA writes `postern ca cert` (the built-in CA clients should trust) to a file and returns its path.
func (s *server) trustedCA() string {
	s.t.Helper()
	path := filepath.Join(s.dir, "trusted-ca.pem")
	if err := os.WriteFile(path, []byte(s.run("ca", "cert")), 0o644); err != nil {
		s.t.Fatal(err)
	}
	return path
}

// tomlQuote makes a TOML basic string.
func tomlQuote(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

// requireListening skips when nothing listens on a configured port of a protocol another engineer is still wiring in
// (like requireIMAP); once something accepts connections every failure is real.
func requireListening(t *testing.T, s *server, name string, port int) {
	t.Helper()
	c, err := dialTimeout(s.addr(port))
	if err != nil {
		t.Skipf("%s is not wired into the postern binary yet: port %d is configured but nothing listens (%v)", name, port, err)
	}
	c.Close()
}

func dialTimeout(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 2*time.Second) }

// clientCertSetup turns on SASL EXTERNAL with the built-in CA as client CA, adds user (password "carol-secret")
// and issues, with openssl as an admin would, a client certificate naming the user (RFC 4422 appendix A): it
// returns the certificate and key files.
func clientCertSetup(t *testing.T, s *server, user string) (crt, key string) {
	t.Helper()
	opensslBin := needTool(t, "openssl")
	caDir := filepath.Join(s.dir, "data", "ca")
	s.setAuth(map[string]string{"client_ca_file": tomlQuote(filepath.Join(caDir, "ca.crt")), "failure_delay": `"10ms"`})
	s.addUser(user, "carol-secret")
	dir := t.TempDir()
	key, csr, ext := filepath.Join(dir, "client.key"), filepath.Join(dir, "client.csr"), filepath.Join(dir, "ext.cnf")
	crt = filepath.Join(dir, "client.crt")
	if err := os.WriteFile(ext, []byte("extendedKeyUsage = clientAuth\nsubjectAltName = email:"+user+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + user},
		{"x509", "-req", "-in", csr, "-CA", filepath.Join(caDir, "ca.crt"), "-CAkey", filepath.Join(caDir, "ca.key"),
			"-CAcreateserial", "-days", "30", "-sha256", "-extfile", ext, "-out", crt},
	} {
		if out, err := exec.Command(opensslBin, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", args[0], err, out)
		}
	}
	return crt, key
}
