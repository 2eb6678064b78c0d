// Package tlsmgr provides the server certificate: from files the admin names, or issued by the built-in CA.
// Listeners share one *tls.Config whose GetCertificate reads the current certificate, so Reload (SIGHUP) swaps it
// without restarting anything.
package tlsmgr

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/postern/postern/internal/pki"
)

// Options configure a Manager.
type Options struct {
	CertFile, KeyFile string // both empty: use the built-in CA
	DataDir           string // holds ca/ and tls/ for the built-in CA
	Hostname          string
	MinVersion        uint16 // default TLS 1.2
	Logger            *slog.Logger
}

// Manager holds the current certificate.
type Manager struct {
	opts Options
	cert atomic.Pointer[tls.Certificate]
	cfg  *tls.Config
}

// New loads (or issues) the certificate.
func New(o Options) (*Manager, error) {
	if o.MinVersion == 0 {
		o.MinVersion = tls.VersionTLS12
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{opts: o}
	if err := m.Reload(); err != nil {
		return nil, err
	}
	m.cfg = &tls.Config{
		MinVersion: o.MinVersion,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return m.cert.Load(), nil
		},
	}
	return m, nil
}

// TLSConfig returns the shared server config.
func (m *Manager) TLSConfig() *tls.Config { return m.cfg }

// paths returns the certificate and key files in use.
func (m *Manager) paths() (string, string) {
	if m.opts.CertFile != "" {
		return m.opts.CertFile, m.opts.KeyFile
	}
	dir := filepath.Join(m.opts.DataDir, "tls")
	return filepath.Join(dir, m.opts.Hostname+".crt"), filepath.Join(dir, m.opts.Hostname+".key")
}

// Reload re-reads the certificate files; with the built-in CA it first (re)issues a certificate that is missing
// or expires within 30 days.
func (m *Manager) Reload() error {
	certFile, keyFile := m.paths()
	if m.opts.CertFile == "" {
		if err := m.ensureIssued(certFile, keyFile); err != nil {
			return err
		}
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("load certificate: %w", err)
	}
	m.cert.Store(&c)
	m.opts.Logger.Info("certificate loaded", "file", certFile, "expires", c.Leaf.NotAfter.Format(time.DateOnly))
	return nil
}

func (m *Manager) ensureIssued(certFile, keyFile string) error {
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil && time.Until(c.Leaf.NotAfter) > 30*24*time.Hour {
		return nil
	}
	ca, err := pki.InitCA(filepath.Join(m.opts.DataDir, "ca"), pki.CAOptions{CommonName: "Postern CA for " + m.opts.Hostname})
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.Issue([]string{m.opts.Hostname, "localhost", "127.0.0.1", "::1"}, 0)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return err
	}
	if err := pki.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return pki.WriteFile(certFile, certPEM, 0o644)
}

// Check verifies the certificate in use: it loads, its key matches, it is valid now and covers the hostname.
func (m *Manager) Check() error {
	certFile, keyFile := m.paths()
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
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
	if err := leaf.VerifyHostname(m.opts.Hostname); err != nil {
		var he x509.HostnameError
		if errors.As(err, &he) {
			return fmt.Errorf("certificate %s does not cover hostname %s", certFile, m.opts.Hostname)
		}
		return err
	}
	return nil
}
