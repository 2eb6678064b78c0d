// Package tlsmgr provides the server certificate: from files the admin names, or issued by the built-in CA
// (internal/pki) when none are named. Every listener shares one *tls.Config whose GetCertificate reads the current
// certificate, so Reload (SIGHUP) swaps it for listeners already running, without a restart.
package tlsmgr

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postern/postern/internal/pki"
)

// RenewBefore is how long before expiry a certificate from the built-in CA is issued again.
const RenewBefore = 30 * 24 * time.Hour

// Options configure a Manager.
type Options struct {
	CertFile, KeyFile string // both empty: use the built-in CA
	DataDir           string // holds ca/ (the built-in CA) and tls/<hostname>.crt/.key
	Hostname          string // the name the certificate must cover
	MinVersion        uint16 // default TLS 1.2
	// RequestClientCert asks clients for a certificate without requiring or verifying one at the handshake;
	// SASL EXTERNAL verifies it against its own CAs, so a client with an unrelated certificate still connects.
	RequestClientCert bool
	Logger            *slog.Logger
}

// Manager holds the current certificate.
type Manager struct {
	opts Options
	log  *slog.Logger
	cfg  *tls.Config

	mu   sync.Mutex                      // serializes Reload: issuing and loading files
	cert atomic.Pointer[tls.Certificate] // the certificate handshakes use; never nil after New
}

// New loads the certificate, first issuing one from the built-in CA when no files are named and none is usable.
func New(o Options) (*Manager, error) {
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("tls: cert_file and key_file must be set together")
	}
	if o.CertFile == "" {
		if o.DataDir == "" {
			return nil, errors.New("tls: the built-in CA needs a data directory")
		}
		if err := checkHostname(o.Hostname); err != nil {
			return nil, err
		}
	}
	if o.MinVersion == 0 {
		o.MinVersion = tls.VersionTLS12
	}
	m := &Manager{opts: o, log: o.Logger}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if err := m.Reload(); err != nil {
		return nil, err
	}
	m.cfg = &tls.Config{
		MinVersion: o.MinVersion,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return m.cert.Load(), nil
		},
	}
	if o.RequestClientCert {
		m.cfg.ClientAuth = tls.RequestClientCert
	}
	return m, nil
}

// ServerCertificate returns the leaf certificate the server sends on a connection with state cs, for the
// tls-server-end-point channel binding (RFC 5929 4).
func (m *Manager) ServerCertificate(cs *tls.ConnectionState) *x509.Certificate {
	if c := m.cert.Load(); c != nil {
		return c.Leaf
	}
	return nil
}

// checkHostname refuses names that would escape DataDir/tls when used as a file name.
func checkHostname(h string) error {
	if h == "" || h == "." || h == ".." || strings.ContainsAny(h, `/\`) || strings.ContainsRune(h, 0) {
		return fmt.Errorf("tls: hostname %q cannot name a certificate", h)
	}
	return nil
}

// TLSConfig returns the server config every listener shares. Its GetCertificate always returns the certificate
// of the latest successful Reload.
func (m *Manager) TLSConfig() *tls.Config { return m.cfg }

// Files returns the certificate and key files in use.
func (m *Manager) Files() (certFile, keyFile string) {
	if m.opts.CertFile != "" {
		return m.opts.CertFile, m.opts.KeyFile
	}
	dir := filepath.Join(m.opts.DataDir, "tls")
	return filepath.Join(dir, m.opts.Hostname+".crt"), filepath.Join(dir, m.opts.Hostname+".key")
}

// Reload re-reads the certificate and key files; with the built-in CA it first issues a certificate that is
// missing or expires within RenewBefore. On error the current certificate stays in use.
func (m *Manager) Reload() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	certFile, keyFile := m.Files()
	if m.opts.CertFile == "" {
		if err := m.ensureIssued(certFile, keyFile); err != nil {
			return err
		}
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("tls: load %s: %w", certFile, err)
	}
	m.cert.Store(&c)
	m.log.Info("certificate loaded", "file", certFile, "subject", c.Leaf.Subject.CommonName,
		"expires", c.Leaf.NotAfter.Format(time.DateOnly))
	return nil
}

// ensureIssued issues a certificate for the hostname from the built-in CA (creating the CA if needed) unless a
// usable one is already there.
func (m *Manager) ensureIssued(certFile, keyFile string) error {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err == nil && time.Until(c.Leaf.NotAfter) > RenewBefore && c.Leaf.VerifyHostname(m.opts.Hostname) == nil {
		return nil
	}
	ca, err := pki.InitCA(filepath.Join(m.opts.DataDir, "ca"), pki.CAOptions{CommonName: "Postern CA for " + m.opts.Hostname})
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	certPEM, keyPEM, err := ca.Issue([]string{m.opts.Hostname, "localhost", "127.0.0.1", "::1"}, 0)
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
	m.log.Info("certificate issued by the built-in CA", "hostname", m.opts.Hostname, "file", certFile)
	return nil
}

// Check verifies the certificate files in use: they load, the key matches the certificate, it is valid now and it
// covers the hostname. The error says what is wrong in one line.
func (m *Manager) Check() error {
	certFile, keyFile := m.Files()
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
	if m.opts.Hostname == "" {
		return nil
	}
	if err := leaf.VerifyHostname(m.opts.Hostname); err != nil {
		var he x509.HostnameError
		if errors.As(err, &he) {
			return fmt.Errorf("certificate %s does not cover hostname %s (it covers %s)", certFile, m.opts.Hostname,
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
