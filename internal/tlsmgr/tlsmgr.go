// Package tlsmgr provides the server certificates: from files the admin names, from an ACME CA (RFC 8555), or
// issued by the built-in CA (internal/pki) when neither is configured. Every listener shares one *tls.Config whose
// GetCertificate picks the certificate for the name the client asked for (SNI) from the current set, so a reload
// (SIGHUP, a changed file, a renewal) reaches listeners already running without a restart and without touching
// sessions in flight. The config also carries the TLS policy: TLS 1.2 at least, AEAD cipher suites only.
package tlsmgr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
)

// RenewBefore is how long before expiry a certificate from the built-in CA is issued again.
const RenewBefore = 30 * 24 * time.Hour

// CertPair names a PEM certificate chain (leaf first) and its key.
type CertPair struct {
	CertFile, KeyFile string
}

// Options configure a Manager.
type Options struct {
	CertFile, KeyFile string     // both empty: use the built-in CA
	Certificates      []CertPair // more certificate files; SNI picks among them by the names they cover
	DataDir           string     // holds ca/ (the built-in CA), tls/<name>.crt/.key and acme/
	Hostname          string     // the name the default certificate must cover
	// Names are more host names clients reach this server by. The built-in CA and ACME issue one certificate per
	// name; with files, the files must cover them.
	Names      []string
	MinVersion uint16 // default TLS 1.2
	// AllowInsecureVersions permits a MinVersion below TLS 1.2 (RFC 8996 deprecates them) and adds the CBC cipher
	// suites those versions need.
	AllowInsecureVersions bool
	// RequestClientCert asks clients for a certificate without requiring or verifying one at the handshake;
	// SASL EXTERNAL verifies it against its own CAs, so a client with an unrelated certificate still connects.
	RequestClientCert bool
	// CheckInterval is how often Run looks for changed certificate files and renewals due; default 1 minute.
	CheckInterval time.Duration
	ACME          *ACMEOptions // nil: no ACME
	Logger        *slog.Logger
}

// Manager holds the current certificates.
type Manager struct {
	opts Options
	log  *slog.Logger
	cfg  *tls.Config
	acme *acmeIssuer // nil without ACME

	mu  sync.Mutex              // serializes Reload: issuing and loading files
	set atomic.Pointer[certSet] // the certificates handshakes use; never nil after New
}

// New loads the certificates, first issuing them from the built-in CA when no files are named and none is usable.
// With ACME, certificates already cached are used at once; Run obtains the missing ones, and until then the
// built-in CA's (or the files') certificates are served.
func New(o Options) (*Manager, error) {
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("tls: cert_file and key_file must be set together")
	}
	for _, p := range o.Certificates {
		if p.CertFile == "" || p.KeyFile == "" {
			return nil, errors.New("tls: each extra certificate needs cert_file and key_file")
		}
	}
	if o.CertFile == "" || o.ACME != nil {
		if o.DataDir == "" {
			return nil, errors.New("tls: the built-in CA and ACME need a data directory")
		}
		for _, n := range append([]string{o.Hostname}, o.Names...) {
			if err := checkHostname(n); err != nil {
				return nil, err
			}
		}
	}
	if err := checkVersion(o.MinVersion, o.AllowInsecureVersions); err != nil {
		return nil, err
	}
	if o.MinVersion == 0 {
		o.MinVersion = tls.VersionTLS12
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = time.Minute
	}
	m := &Manager{opts: o, log: o.Logger}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if err := m.Reload(); err != nil {
		return nil, err
	}
	if o.ACME != nil {
		a, err := newACMEIssuer(*o.ACME, o.DataDir, append([]string{o.Hostname}, o.Names...), m.log)
		if err != nil {
			return nil, err
		}
		m.acme = a
	}
	m.cfg = &tls.Config{
		MinVersion:   o.MinVersion,
		CipherSuites: CipherSuites(o.AllowInsecureVersions),
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return m.certificate(hello.ServerName), nil
		},
		GetConfigForClient: m.configForClient,
	}
	if o.RequestClientCert {
		m.cfg.ClientAuth = tls.RequestClientCert
	}
	return m, nil
}

// checkHostname refuses names that would escape DataDir when used as a file name.
func checkHostname(h string) error {
	if h == "" || h == "." || h == ".." || strings.ContainsAny(h, `/\`) || strings.ContainsRune(h, 0) {
		return fmt.Errorf("tls: hostname %q cannot name a certificate", h)
	}
	return nil
}

// TLSConfig returns the server config every listener shares. Its GetCertificate always uses the certificates of
// the latest successful Reload (and of ACME, once obtained).
func (m *Manager) TLSConfig() *tls.Config { return m.cfg }

// certificate picks the certificate for an SNI name ("" when the client sent none, as many MTAs do): ACME's for
// that name, else the set's for that name, else the default one (the hostname's).
func (m *Manager) certificate(serverName string) *tls.Certificate {
	if m.acme != nil {
		if c := m.acme.get(serverName); c != nil {
			return c
		}
		if c := m.acme.get(m.opts.Hostname); c != nil && m.set.Load().lookup(serverName) == nil {
			return c
		}
	}
	set := m.set.Load()
	if serverName != "" {
		if c := set.lookup(serverName); c != nil {
			return c
		}
	}
	return set.def
}

// configForClient answers an ACME server's tls-alpn-01 validation (RFC 8737 3: a hello offering only
// "acme-tls/1") with the challenge certificate; every other client gets the shared config. A separate config keeps
// acme-tls/1 out of the ALPN list mail clients see.
func (m *Manager) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if m.acme == nil || len(hello.SupportedProtos) != 1 || hello.SupportedProtos[0] != acme.ALPNProto {
		return nil, nil
	}
	c := m.acme.alpnCert(hello.ServerName)
	if c == nil {
		return nil, fmt.Errorf("tls: no tls-alpn-01 challenge pending for %q", hello.ServerName)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{acme.ALPNProto}, Certificates: []tls.Certificate{*c}}, nil
}

// ServerCertificate returns the leaf certificate the server sent on a connection with state cs, for the
// tls-server-end-point channel binding (RFC 5929 4). It picks by cs.ServerName as the handshake did; after a
// reload between the handshake and the call it returns the new certificate, and the binding fails safe.
func (m *Manager) ServerCertificate(cs *tls.ConnectionState) *x509.Certificate {
	name := ""
	if cs != nil {
		name = cs.ServerName
	}
	if c := m.certificate(name); c != nil {
		return c.Leaf
	}
	return nil
}

// HTTPHandler serves ACME http-01 challenges (RFC 8555 8.3: /.well-known/acme-challenge/TOKEN on port 80) and
// passes every other request to fallback (nil: 404).
func (m *Manager) HTTPHandler(fallback http.Handler) http.Handler {
	if fallback == nil {
		fallback = http.NotFoundHandler()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.acme != nil && strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			m.acme.serveHTTP(w, r)
			return
		}
		fallback.ServeHTTP(w, r)
	})
}

// Reload re-reads the certificate files; with the built-in CA it first issues certificates that are missing or
// expire within RenewBefore. On error the current certificates stay in use.
func (m *Manager) Reload() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s *certSet
	var err error
	if m.opts.CertFile != "" {
		s, err = loadFiles(m.opts)
	} else {
		s, err = loadBuiltIn(m.opts, m.log.Info)
	}
	if err != nil {
		return err
	}
	m.set.Store(s)
	m.log.Info("certificates loaded", "default", s.def.Leaf.Subject.CommonName, "names", len(s.byName),
		"expires", s.def.Leaf.NotAfter.Format(time.DateOnly))
	return nil
}

// Run keeps the certificates current until ctx ends: every CheckInterval it reloads when a certificate file
// changed (an admin's renewal with certbot or `openssl ca`) or a built-in CA certificate is due, and obtains or
// renews ACME certificates ahead of expiry. It returns when ctx is done and its ACME work has stopped.
func (m *Manager) Run(ctx context.Context) {
	if m.acme != nil {
		defer m.acme.wait()
		m.acme.maintain(ctx)
	}
	t := time.NewTicker(m.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := m.set.Load()
		due := !s.renewAt.IsZero() && time.Now().After(s.renewAt)
		if s.changed() || due {
			if err := m.Reload(); err != nil {
				m.log.Error("reload certificates", "err", err)
			}
		}
		if m.acme != nil {
			m.acme.maintain(ctx)
		}
	}
}

// Files returns the default certificate and key files in use.
func (m *Manager) Files() (certFile, keyFile string) {
	if m.opts.CertFile != "" {
		return m.opts.CertFile, m.opts.KeyFile
	}
	return builtInFiles(m.opts.DataDir, m.opts.Hostname)
}

// Check verifies the certificate files in use: they load, each key matches its certificate, they are valid now,
// the default one covers the hostname and every extra name is covered by some certificate. The error says what
// is wrong in one line.
func (m *Manager) Check() error {
	certFile, keyFile := m.Files()
	if err := checkPair(certFile, keyFile, m.opts.Hostname); err != nil {
		return err
	}
	if m.opts.CertFile == "" {
		for _, n := range m.opts.Names {
			cf, kf := builtInFiles(m.opts.DataDir, n)
			if err := checkPair(cf, kf, n); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range m.opts.Certificates {
		if err := checkPair(p.CertFile, p.KeyFile, ""); err != nil {
			return err
		}
	}
	s, err := loadFiles(m.opts)
	if err != nil {
		return err
	}
	for _, n := range m.opts.Names {
		if s.lookup(n) == nil {
			return fmt.Errorf("no certificate file covers tls.names entry %s", n)
		}
	}
	return nil
}
