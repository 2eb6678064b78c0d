package tlsmgr

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/postern/postern/internal/pki"
)

// certSet is one consistent generation of certificates: the default one and an index by host name for SNI.
// It is replaced whole, so a handshake sees either the old set or the new one.
type certSet struct {
	def    *tls.Certificate
	byName map[string]*tls.Certificate // lower-case DNS names and IPs, "*.example.org" for wildcards
	stamps map[string]fileStamp        // the files it was loaded from, to notice changes
	// renewAt is when a certificate of the built-in CA is due again (zero with files from the admin).
	renewAt time.Time
}

// fileStamp identifies one version of a file.
type fileStamp struct {
	size    int64
	modTime time.Time
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{size: -1}
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime()}
}

// changed reports whether any file of the set differs from when it was loaded.
func (s *certSet) changed() bool {
	for path, st := range s.stamps {
		if stampOf(path) != st {
			return true
		}
	}
	return false
}

// add indexes c under every name it covers; names already indexed keep their certificate, so the first pair
// loaded for a name wins.
func (s *certSet) add(c *tls.Certificate) {
	for _, n := range names(c.Leaf) {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if _, ok := s.byName[n]; !ok {
			s.byName[n] = c
		}
	}
}

// lookup returns the certificate for an SNI name: exact, then a wildcard for the parent domain, else nil.
func (s *certSet) lookup(name string) *tls.Certificate {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if c := s.byName[name]; c != nil {
		return c
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		return s.byName["*"+name[i:]]
	}
	return nil
}

// loadFiles reads the admin's certificate files: the default pair, then the extra pairs for other names.
func loadFiles(o Options) (*certSet, error) {
	s := &certSet{byName: map[string]*tls.Certificate{}, stamps: map[string]fileStamp{}}
	pairs := append([]CertPair{{CertFile: o.CertFile, KeyFile: o.KeyFile}}, o.Certificates...)
	for i, p := range pairs {
		// The stamps are taken before reading: a change during the read is seen at the next check.
		s.stamps[p.CertFile], s.stamps[p.KeyFile] = stampOf(p.CertFile), stampOf(p.KeyFile)
		c, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: load %s: %w", p.CertFile, err)
		}
		if i == 0 {
			s.def = &c
		}
		s.add(&c)
	}
	return s, nil
}

// loadBuiltIn issues (when missing or due) and loads one certificate from the built-in CA per host name: the
// hostname's (which also covers localhost and the loopback addresses) and one per extra name, so SNI picks a
// certificate that names exactly what the client asked for.
func loadBuiltIn(o Options, log func(string, ...any)) (*certSet, error) {
	s := &certSet{byName: map[string]*tls.Certificate{}, stamps: map[string]fileStamp{}}
	for i, name := range append([]string{o.Hostname}, o.Names...) {
		certFile, keyFile := builtInFiles(o.DataDir, name)
		sans := []string{name}
		if i == 0 {
			sans = append(sans, "localhost", "127.0.0.1", "::1")
		}
		if err := ensureIssued(o.DataDir, certFile, keyFile, sans, log); err != nil {
			return nil, err
		}
		s.stamps[certFile], s.stamps[keyFile] = stampOf(certFile), stampOf(keyFile)
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: load %s: %w", certFile, err)
		}
		if i == 0 {
			s.def = &c
		}
		s.add(&c)
		if due := c.Leaf.NotAfter.Add(-RenewBefore); s.renewAt.IsZero() || due.Before(s.renewAt) {
			s.renewAt = due
		}
	}
	return s, nil
}

// builtInFiles names the files of the built-in CA's certificate for a host.
func builtInFiles(dataDir, name string) (string, string) {
	dir := filepath.Join(dataDir, "tls")
	return filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
}

// ensureIssued issues a certificate for sans from the built-in CA (creating the CA if needed) unless a usable one
// is already there: it loads, covers sans[0], and does not expire within RenewBefore.
func ensureIssued(dataDir, certFile, keyFile string, sans []string, log func(string, ...any)) error {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err == nil && time.Until(c.Leaf.NotAfter) > RenewBefore && c.Leaf.VerifyHostname(sans[0]) == nil {
		return nil
	}
	ca, err := pki.InitCA(filepath.Join(dataDir, "ca"), pki.CAOptions{CommonName: "Postern CA for " + sans[0]})
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	certPEM, keyPEM, err := ca.Issue(sans, 0)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	// Each file is replaced atomically. A crash between the two leaves a pair that does not match: it fails to
	// load, so the next start issues a fresh one.
	if err := pki.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if err := pki.WriteFile(certFile, certPEM, 0o644); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	log("certificate issued by the built-in CA", "hostname", sans[0], "file", certFile)
	return nil
}

// checkPair verifies one certificate file pair: it loads, the key matches, it is valid now and covers host (when
// host is not empty). The error says what is wrong in one line.
func checkPair(certFile, keyFile, host string) error {
	c, err := tls.LoadX509KeyPair(certFile, keyFile) // fails when the key does not match
	if err != nil {
		return fmt.Errorf("certificate %s: %w", certFile, err)
	}
	leaf := c.Leaf
	now := time.Now()
	switch {
	case now.After(leaf.NotAfter):
		return fmt.Errorf("certificate %s expired on %s", certFile, leaf.NotAfter.Format(time.DateOnly))
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("certificate %s is not valid before %s", certFile, leaf.NotBefore.Format(time.DateOnly))
	}
	if host == "" {
		return nil
	}
	if err := leaf.VerifyHostname(host); err != nil {
		var he x509.HostnameError
		if errors.As(err, &he) {
			return fmt.Errorf("certificate %s does not cover hostname %s (it covers %s)", certFile, host,
				strings.Join(names(leaf), ", "))
		}
		return fmt.Errorf("certificate %s: %w", certFile, err)
	}
	return nil
}

// names lists the DNS and IP names a certificate covers.
func names(c *x509.Certificate) []string {
	out := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	if len(out) == 0 {
		out = append(out, c.Subject.CommonName)
	}
	return out
}
