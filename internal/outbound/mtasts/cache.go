package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/postern/postern/internal/dns"
)

// Options configure a Cache. The zero value of each field but Resolver picks the default.
type Options struct {
	Resolver dns.Resolver
	// RootCAs verify the policy host's certificate (RFC 8461 3.3: PKIX, for the name mta-sts.<domain>); nil:
	// the system's roots.
	RootCAs *x509.CertPool
	// Port of the policy host; default 443 (tests serve the policy on loopback elsewhere).
	Port int
	// Dial opens the TCP connection to the policy host; default: resolve the host with Resolver, dial its
	// addresses in turn.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Timeout bounds one fetch; default 60s.
	Timeout time.Duration
	// MaxEntries bounds the cache; default 10000 domains.
	MaxEntries int
	Now        func() time.Time
	Logger     *slog.Logger
}

// Cache finds the MTA-STS policy of recipient domains and remembers them for their max_age. It is safe for
// concurrent use.
type Cache struct {
	opts   Options
	log    *slog.Logger
	client *http.Client

	mu      sync.Mutex // guards entries
	entries map[string]entry
}

type entry struct {
	id      string
	policy  *Policy
	expires time.Time
}

// New returns a Cache.
func New(o Options) (*Cache, error) {
	if o.Resolver == nil {
		return nil, errors.New("mtasts: a resolver is required")
	}
	if o.Port == 0 {
		o.Port = 443
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 10000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cache{opts: o, log: o.Logger, entries: map[string]entry{}}
	if o.Dial == nil {
		o.Dial = c.dial
	}
	tr := &http.Transport{
		DialContext:            o.Dial,
		TLSClientConfig:        &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    o.Timeout,
		ResponseHeaderTimeout:  o.Timeout,
		MaxResponseHeaderBytes: 16 << 10,
		DisableKeepAlives:      true, // one fetch per domain and max_age: nothing to keep alive
		ForceAttemptHTTP2:      true,
	}
	c.client = &http.Client{
		Transport: tr,
		Timeout:   o.Timeout,
		// RFC 8461 3.3: HTTP 3xx redirects MUST NOT be followed; the 3xx itself then fails the fetch.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// Get returns the policy in force for domain, or nil when it has none. It never fails: a domain whose policy
// cannot be found is treated as having none (RFC 8461 5.1), unless an unexpired cached policy exists, which is
// then used (RFC 8461 3.3 and 5.1: a failed refresh does not drop a cached policy).
func (c *Cache) Get(ctx context.Context, domain string) *Policy {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	now := c.opts.Now()
	cached, ok := c.lookup(domain, now)
	id, err := c.txtID(ctx, domain)
	if err != nil {
		if ok {
			c.log.Debug("mta-sts TXT lookup failed; using the cached policy", "domain", domain, "err", err)
			return cached.policy
		}
		if !errors.Is(err, dns.ErrNotFound) && !errors.Is(err, dns.ErrNoData) {
			c.log.Info("mta-sts TXT lookup failed; no policy", "domain", domain, "err", err)
		}
		return nil
	}
	if ok && cached.id == id {
		return cached.policy
	}
	p, err := c.Fetch(ctx, domain)
	if err != nil {
		c.log.Warn("mta-sts policy fetch failed", "domain", domain, "id", id, "cached", ok, "err", err)
		if ok {
			return cached.policy
		}
		return nil
	}
	c.store(domain, entry{id: id, policy: p, expires: now.Add(p.MaxAge)})
	c.log.Info("mta-sts policy fetched", "domain", domain, "id", id, "mode", p.Mode, "mx", strings.Join(p.MX, ","), "max_age", p.MaxAge)
	return p
}

// lookup returns the unexpired cache entry of domain.
func (c *Cache) lookup(domain string, now time.Time) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[domain]
	if ok && !now.Before(e.expires) {
		delete(c.entries, domain)
		return entry{}, false
	}
	return e, ok
}

// store remembers e, making room by dropping expired entries (or, failing that, an arbitrary one).
func (c *Cache) store(domain string, e entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[domain]; !ok && len(c.entries) >= c.opts.MaxEntries {
		now := c.opts.Now()
		for d, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, d)
			}
		}
		for d := range c.entries {
			if len(c.entries) < c.opts.MaxEntries {
				break
			}
			delete(c.entries, d)
		}
	}
	c.entries[domain] = e
}

// txtID looks up _mta-sts.<domain> and returns the id of its one STSv1 record (RFC 8461 3.1: records not
// starting with v=STSv1 are discarded; anything but exactly one valid record means no policy).
func (c *Cache) txtID(ctx context.Context, domain string) (string, error) {
	txts, _, err := c.opts.Resolver.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		return "", err
	}
	var recs []string
	for _, t := range txts {
		if strings.HasPrefix(t, "v=STSv1") {
			recs = append(recs, t)
		}
	}
	if len(recs) != 1 {
		return "", fmt.Errorf("_mta-sts.%s: %d STSv1 records: %w", domain, len(recs), dns.ErrNoData)
	}
	return ParseTXT(recs[0])
}

// Fetch retrieves and parses https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 3.3): the certificate
// must verify for mta-sts.<domain>, no redirect is followed, only a 200 with media type text/plain counts, and
// the body is read up to MaxPolicySize.
func (c *Cache) Fetch(ctx context.Context, domain string) (*Policy, error) {
	host := "mta-sts." + strings.ToLower(strings.TrimSuffix(domain, "."))
	if c.opts.Port != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(c.opts.Port))
	}
	url := "https://" + host + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("mta-sts policy %s: %w", url, err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mta-sts policy: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mta-sts policy %s: HTTP status %s", url, resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("mta-sts policy %s: content type %q is not text/plain", url, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("mta-sts policy %s: %w", url, err)
	}
	if len(body) > MaxPolicySize {
		return nil, fmt.Errorf("mta-sts policy %s: larger than %d bytes", url, MaxPolicySize)
	}
	p, err := Parse(body)
	if err != nil {
		return nil, fmt.Errorf("mta-sts policy %s: %w", url, err)
	}
	return p, nil
}

// dial resolves the policy host through the configured resolver (so config dns.resolver applies to it as to
// MX lookups) and connects to its addresses in turn.
func (c *Cache) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips, _, err := c.opts.Resolver.LookupIP(ctx, host)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	var errs []error
	for _, ip := range ips {
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}
