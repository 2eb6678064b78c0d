package tlsmgr

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/postern/postern/internal/pki"
)

// ACMEOptions configure certificates from an ACME CA (RFC 8555), e.g. Let's Encrypt.
type ACMEOptions struct {
	Directory string // directory URL, e.g. https://acme-v02.api.letsencrypt.org/directory
	Email     string // account contact; optional
	// Challenge is the validation method: "http-01" (RFC 8555 8.3; port 80 must reach listen.http) or
	// "tls-alpn-01" (RFC 8737; port 443 must reach one of the implicit-TLS listeners). Default http-01.
	Challenge string
	RootCAs   *x509.CertPool // trust for the directory's HTTPS; nil: the system roots
	// RenewBefore is how long before expiry a certificate is renewed; default 30 days, and never later than when
	// a third of its lifetime is left (short-lived certificates).
	RenewBefore time.Duration
}

// Challenge types.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

// acmeIssuer obtains and renews one certificate per host name and caches account key and certificates as files
// under data_dir/acme (key files 0600), so a restart needs no new issuance.
type acmeIssuer struct {
	o     ACMEOptions
	dir   string
	names []string
	log   *slog.Logger

	clientMu sync.Mutex // guards client
	client   *acme.Client

	certs atomic.Pointer[map[string]*tls.Certificate] // issued certificates by name, read by handshakes

	mu      sync.Mutex                  // guards the fields below
	tokens  map[string]string           // http-01: URL path -> key authorization
	alpn    map[string]*tls.Certificate // tls-alpn-01: name -> challenge certificate
	busy    map[string]bool             // names being issued now
	retryAt map[string]time.Time        // after a failure, no new attempt before this
	fails   map[string]int
	wg      sync.WaitGroup // issuing goroutines
}

func newACMEIssuer(o ACMEOptions, dataDir string, names []string, log *slog.Logger) (*acmeIssuer, error) {
	switch o.Challenge {
	case "":
		o.Challenge = ChallengeHTTP01
	case ChallengeHTTP01, ChallengeTLSALPN01:
	default:
		return nil, fmt.Errorf("tls: ACME challenge %q is not http-01 or tls-alpn-01", o.Challenge)
	}
	if o.Directory == "" {
		return nil, errors.New("tls: ACME needs a directory URL")
	}
	if o.RenewBefore <= 0 {
		o.RenewBefore = RenewBefore
	}
	for i, n := range names {
		names[i] = strings.ToLower(strings.TrimSuffix(n, "."))
	}
	a := &acmeIssuer{o: o, dir: filepath.Join(dataDir, "acme"), names: names, log: log.With("acme", o.Directory),
		tokens: map[string]string{}, alpn: map[string]*tls.Certificate{}, busy: map[string]bool{},
		retryAt: map[string]time.Time{}, fails: map[string]int{}}
	certs := map[string]*tls.Certificate{}
	for _, n := range names {
		c, err := tls.LoadX509KeyPair(a.files(n))
		if err == nil {
			certs[n] = &c
		}
	}
	a.certs.Store(&certs)
	return a, nil
}

func (a *acmeIssuer) files(name string) (string, string) {
	return filepath.Join(a.dir, name+".crt"), filepath.Join(a.dir, name+".key")
}

// get returns the issued certificate for name, or nil.
func (a *acmeIssuer) get(name string) *tls.Certificate {
	return (*a.certs.Load())[strings.ToLower(strings.TrimSuffix(name, "."))]
}

// due reports whether c is missing or within its renewal window.
func (a *acmeIssuer) due(c *tls.Certificate, now time.Time) bool {
	if c == nil {
		return true
	}
	before := min(a.o.RenewBefore, c.Leaf.NotAfter.Sub(c.Leaf.NotBefore)/3)
	return now.After(c.Leaf.NotAfter.Add(-before))
}

// maintain starts issuing, in the background, every certificate that is missing or due and not being issued or
// waiting to be retried.
func (a *acmeIssuer) maintain(ctx context.Context) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range a.names {
		if a.busy[n] || now.Before(a.retryAt[n]) || !a.due(a.get(n), now) {
			continue
		}
		a.busy[n] = true
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			err := a.issue(ctx, n)
			a.mu.Lock()
			defer a.mu.Unlock()
			a.busy[n] = false
			if err != nil {
				// Back off 1, 2, 4 ... minutes up to an hour: CAs rate-limit failed validations.
				a.fails[n]++
				wait := min(time.Minute<<min(a.fails[n]-1, 6), time.Hour)
				a.retryAt[n] = time.Now().Add(wait)
				a.log.Error("ACME certificate", "name", n, "err", err, "retry_in", wait.String())
				return
			}
			a.fails[n] = 0
		}()
	}
}

// wait waits for the issuing goroutines (after their context ended).
func (a *acmeIssuer) wait() { a.wg.Wait() }

// acmeClient returns the client with the cached (or a new) account key, registered with the CA.
func (a *acmeIssuer) acmeClient(ctx context.Context) (*acme.Client, error) {
	a.clientMu.Lock()
	defer a.clientMu.Unlock()
	if a.client != nil {
		return a.client, nil
	}
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(filepath.Join(a.dir, "account.key"))
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: time.Minute}
	if a.o.RootCAs != nil {
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: a.o.RootCAs, MinVersion: tls.VersionTLS12}}
	}
	c := &acme.Client{Key: key, DirectoryURL: a.o.Directory, HTTPClient: hc, UserAgent: "postern"}
	acct := &acme.Account{}
	if a.o.Email != "" {
		acct.Contact = []string{"mailto:" + a.o.Email}
	}
	// RFC 8555 7.3: registering an existing key returns that account.
	if _, err := c.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return nil, fmt.Errorf("register account: %w", err)
	}
	a.client = c
	return c, nil
}

// issue runs one order for name (RFC 8555 7.4): authorize with the configured challenge, finalize with a fresh
// P-256 key, then store and serve the certificate.
func (a *acmeIssuer) issue(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	c, err := a.acmeClient(ctx)
	if err != nil {
		return err
	}
	order, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name))
	if err != nil {
		return fmt.Errorf("new order: %w", err)
	}
	for _, u := range order.AuthzURLs {
		if err := a.authorize(ctx, c, u, name); err != nil {
			return err
		}
	}
	if order, err = c.WaitOrder(ctx, order.URI); err != nil {
		return fmt.Errorf("order: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, key)
	if err != nil {
		return err
	}
	der, _, err := c.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	if err != nil {
		// A CA may answer finalize without a Location header (RFC 8555 7.4 does not require one; Pebble does so),
		// which leaves x/crypto without the order URL while the order is still "processing": wait on the URL we
		// have. Any other failure leaves the order invalid, and the first error is the one to report.
		o, werr := c.WaitOrder(ctx, order.URI)
		if werr != nil || o.CertURL == "" {
			return fmt.Errorf("finalize: %w", err)
		}
		if der, err = c.FetchCert(ctx, o.CertURL, true); err != nil {
			return fmt.Errorf("fetch certificate: %w", err)
		}
	}
	cert, err := a.store(name, der, key)
	if err != nil {
		return err
	}
	a.mu.Lock()
	next := map[string]*tls.Certificate{}
	for k, v := range *a.certs.Load() {
		next[k] = v
	}
	next[name] = cert
	a.certs.Store(&next)
	a.mu.Unlock()
	a.log.Info("ACME certificate obtained", "name", name, "expires", cert.Leaf.NotAfter.Format(time.RFC3339))
	return nil
}

// authorize satisfies one authorization with the configured challenge type.
func (a *acmeIssuer) authorize(ctx context.Context, c *acme.Client, url, name string) error {
	z, err := c.GetAuthorization(ctx, url)
	if err != nil {
		return fmt.Errorf("authorization: %w", err)
	}
	if z.Status == acme.StatusValid {
		return nil
	}
	var chal *acme.Challenge
	for _, ch := range z.Challenges {
		if ch.Type == a.o.Challenge {
			chal = ch
		}
	}
	if chal == nil {
		return fmt.Errorf("the CA offers no %s challenge for %s", a.o.Challenge, name)
	}
	a.mu.Lock()
	switch chal.Type {
	case ChallengeHTTP01:
		resp, err := c.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			a.mu.Unlock()
			return err
		}
		path := c.HTTP01ChallengePath(chal.Token)
		a.tokens[path] = resp
		defer a.forget(func() { delete(a.tokens, path) })
	case ChallengeTLSALPN01:
		cert, err := c.TLSALPN01ChallengeCert(chal.Token, name)
		if err != nil {
			a.mu.Unlock()
			return err
		}
		a.alpn[name] = &cert
		defer a.forget(func() { delete(a.alpn, name) })
	}
	a.mu.Unlock()
	if _, err := c.Accept(ctx, chal); err != nil {
		return fmt.Errorf("accept %s: %w", chal.Type, err)
	}
	if _, err := c.WaitAuthorization(ctx, z.URI); err != nil {
		return fmt.Errorf("%s validation of %s: %w", chal.Type, name, err)
	}
	return nil
}

func (a *acmeIssuer) forget(f func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f()
}

// store writes the chain and key (key first, 0600, each file atomically) and returns them as a certificate.
func (a *acmeIssuer) store(name string, der [][]byte, key crypto.Signer) (*tls.Certificate, error) {
	if len(der) == 0 {
		return nil, errors.New("the CA returned no certificate")
	}
	leaf, err := x509.ParseCertificate(der[0])
	if err != nil {
		return nil, fmt.Errorf("issued certificate: %w", err)
	}
	if err := leaf.VerifyHostname(name); err != nil {
		return nil, fmt.Errorf("issued certificate: %w", err)
	}
	var chain []byte
	for _, d := range der {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	certFile, keyFile := a.files(name)
	if err := pki.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		return nil, err
	}
	if err := pki.WriteFile(certFile, chain, 0o644); err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: der, PrivateKey: key, Leaf: leaf}, nil
}

// loadOrCreateKey reads a PEM PKCS#8 ECDSA key, or creates one (0600) when the file does not exist.
func loadOrCreateKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		return key, pki.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	}
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s holds no PEM key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: %T is no signing key", path, k)
	}
	return s, nil
}

// serveHTTP answers an http-01 validation request (RFC 8555 8.3) with the key authorization.
func (a *acmeIssuer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	resp, ok := a.tokens[r.URL.Path]
	a.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write([]byte(resp))
}

// alpnCert returns the tls-alpn-01 challenge certificate for name, or nil.
func (a *acmeIssuer) alpnCert(name string) *tls.Certificate {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.alpn[strings.ToLower(strings.TrimSuffix(name, "."))]
}
