package dns

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// ClientOptions configure NewClient.
type ClientOptions struct {
	// Server is "host:port" of the DNS server to ask (config dns.resolver); empty: the first nameserver of
	// /etc/resolv.conf, or 127.0.0.1:53.
	Server string
	// Timeout bounds one lookup, retransmissions over UDP included; default 5s.
	Timeout time.Duration
	// CacheSize is how many answers the client keeps (config dns.cache_size, DefaultCacheSize by default there);
	// 0: none. Concurrent identical questions share one exchange either way.
	CacheSize int
}

// Client resolves with one DNS server over UDP, falling back to TCP for truncated answers. It keeps answers for
// their TTL in a bounded cache (cache.go), so that a host without a local caching resolver does not wait for the
// network on every message's SPF, DKIM, DMARC and MX lookups. It is safe for concurrent use.
type Client struct {
	server  string
	timeout time.Duration
	cache   *cache
}

var _ Resolver = (*Client)(nil)

// NewClient returns a Client.
func NewClient(o ClientOptions) (*Client, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	server := o.Server
	if server == "" {
		server = "127.0.0.1:53"
		if cc, err := mdns.ClientConfigFromFile("/etc/resolv.conf"); err == nil && len(cc.Servers) > 0 {
			server = net.JoinHostPort(cc.Servers[0], cc.Port)
		}
	}
	if _, _, err := net.SplitHostPort(server); err != nil {
		return nil, fmt.Errorf("dns resolver %q is not host:port", server)
	}
	if o.CacheSize < 0 {
		return nil, fmt.Errorf("dns cache size %d is negative", o.CacheSize)
	}
	return &Client{server: server, timeout: o.Timeout, cache: newCache(o.CacheSize)}, nil
}

// Server returns the address of the DNS server the client asks.
func (c *Client) Server() string { return c.server }

// query asks for name/qtype and returns the answer records, following nothing itself: a recursive server
// returns the CNAME chain together with the records at its end. Answers come from the cache while their TTL lasts;
// a question already being asked waits for that exchange instead of sending another. The records returned are
// shared with the cache: callers must not modify them (nor rely on their TTL fields, which are as received).
func (c *Client) query(ctx context.Context, name string, qtype uint16) ([]mdns.RR, Result, error) {
	k := cacheKey{name: fqdn(name), qtype: qtype}
	for {
		ans, hit, f, leader := c.cache.begin(k)
		if hit {
			return ans.rrs, ans.res, ans.err
		}
		if leader {
			ans = c.lead(ctx, k, f, name)
			return ans.rrs, ans.res, ans.err
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, Result{}, &TempError{Name: name, Err: ctx.Err()}
		}
		if f.abandoned && ctx.Err() == nil {
			continue // the leader gave up, not the server: ask again
		}
		return f.ans.rrs, f.ans.res, f.ans.err
	}
}

// lead runs the exchange of flight f and ends it, even when the exchange panics, so that no follower waits forever.
func (c *Client) lead(ctx context.Context, k cacheKey, f *flight, name string) (ans answer) {
	var ttl time.Duration
	defer func() {
		if p := recover(); p != nil {
			c.cache.finish(k, f, answer{err: &TempError{Name: name, Err: fmt.Errorf("panic: %v", p)}}, 0, false)
			panic(p)
		}
		c.cache.finish(k, f, ans, ttl, ctx.Err() != nil && IsTemporary(ans.err))
	}()
	ans, ttl = c.exchange(ctx, name, k.qtype)
	return ans
}

// exchange asks the server once (again over TCP when the UDP answer is truncated) and says how long the answer may
// be cached (cacheTTL).
func (c *Client) exchange(ctx context.Context, name string, qtype uint16) (answer, time.Duration) {
	m := new(mdns.Msg)
	m.SetQuestion(fqdn(name), qtype)
	m.RecursionDesired = true
	// RFC 6840 5.7: setting AD in a query asks a validating resolver to report whether the answer is authentic.
	m.AuthenticatedData = true
	m.SetEdns0(1232, false)
	r, err := c.send(ctx, "udp", m)
	if err == nil && r.Truncated {
		r, err = c.send(ctx, "tcp", m)
	}
	if err != nil {
		return answer{err: &TempError{Name: name, Err: err}}, 0
	}
	res := Result{Authentic: r.AuthenticatedData}
	switch r.Rcode {
	case mdns.RcodeSuccess:
	case mdns.RcodeNameError:
		return answer{res: res, err: fmt.Errorf("%s: %w", trim(name), ErrNotFound)}, cacheTTL(r, true)
	default:
		return answer{res: res, err: &TempError{Name: name, Err: errors.New(mdns.RcodeToString[r.Rcode])}}, 0
	}
	var out []mdns.RR
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == qtype {
			out = append(out, rr)
		}
	}
	if len(out) == 0 {
		return answer{res: res, err: fmt.Errorf("%s %s: %w", trim(name), mdns.TypeToString[qtype], ErrNoData)},
			cacheTTL(r, true)
	}
	return answer{rrs: out, res: res}, cacheTTL(r, false)
}

// send sends m over network and reads the reply within the client's timeout. Over UDP a lost query or reply is
// sent again after a fifth of the timeout, then after twice that, and so on until the timeout (RFC 1123 6.1.3.3:
// a resolver must retransmit, with exponential backoff), so that one lost packet does not cost the whole timeout.
func (c *Client) send(ctx context.Context, network string, m *mdns.Msg) (*mdns.Msg, error) {
	if network != "udp" {
		return c.sendOnce(ctx, network, m, c.timeout)
	}
	deadline := time.Now().Add(c.timeout)
	for wait := c.timeout / 5; ; wait *= 2 {
		left := time.Until(deadline)
		r, err := c.sendOnce(ctx, network, m, min(wait, left))
		var ne net.Error
		if err == nil || ctx.Err() != nil || !errors.As(err, &ne) || !ne.Timeout() || wait >= left {
			return r, err
		}
	}
}

// sendOnce sends m once and waits at most timeout for the reply. miekg/dns obeys the context's deadline only; here
// cancellation ends the wait as well (a server shutting down, a coalesced leader's caller gone), and the error
// says so.
func (c *Client) sendOnce(ctx context.Context, network string, m *mdns.Msg, timeout time.Duration) (*mdns.Msg, error) {
	cl := &mdns.Client{Net: network, Timeout: timeout}
	co, err := cl.DialContext(ctx, c.server)
	if err != nil {
		return nil, err
	}
	defer co.Close()
	stop := context.AfterFunc(ctx, func() { co.SetDeadline(time.Now()) })
	defer stop()
	r, _, err := cl.ExchangeWithConnContext(ctx, m, co)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return r, err
}

// LookupMX returns the MX records of domain as published (callers sort them).
func (c *Client) LookupMX(ctx context.Context, domain string) ([]MX, Result, error) {
	rrs, res, err := c.query(ctx, domain, mdns.TypeMX)
	if err != nil {
		return nil, res, err
	}
	out := make([]MX, 0, len(rrs))
	for _, rr := range rrs {
		mx := rr.(*mdns.MX)
		out = append(out, MX{Host: trim(mx.Mx), Pref: mx.Preference})
	}
	return out, res, nil
}

// LookupIP returns the IPv4 then the IPv6 addresses of host. It fails only when both lookups fail; a name with
// only AAAA records is fine.
func (c *Client) LookupIP(ctx context.Context, host string) ([]netip.Addr, Result, error) {
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{ip}, Result{Authentic: true}, nil
	}
	var out []netip.Addr
	var errs []error
	auth := true
	for _, qt := range []uint16{mdns.TypeA, mdns.TypeAAAA} {
		rrs, res, err := c.query(ctx, host, qt)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		auth = auth && res.Authentic
		for _, rr := range rrs {
			switch v := rr.(type) {
			case *mdns.A:
				if ip, ok := netip.AddrFromSlice(v.A.To4()); ok {
					out = append(out, ip)
				}
			case *mdns.AAAA:
				if ip, ok := netip.AddrFromSlice(v.AAAA); ok {
					out = append(out, ip)
				}
			}
		}
	}
	if len(out) > 0 {
		return out, Result{Authentic: auth}, nil
	}
	return nil, Result{}, pickError(errs)
}

// pickError prefers a temporary error (retry) over NODATA, and NODATA over NXDOMAIN.
func pickError(errs []error) error {
	for _, e := range errs {
		if IsTemporary(e) {
			return e
		}
	}
	for _, e := range errs {
		if errors.Is(e, ErrNoData) {
			return e
		}
	}
	return errs[0]
}

// LookupTXT returns each TXT record with its strings joined (RFC 7208 3.3).
func (c *Client) LookupTXT(ctx context.Context, name string) ([]string, Result, error) {
	rrs, res, err := c.query(ctx, name, mdns.TypeTXT)
	if err != nil {
		return nil, res, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*mdns.TXT).Txt, ""))
	}
	return out, res, nil
}

// LookupTLSA returns the TLSA records of _port._tcp.host.
func (c *Client) LookupTLSA(ctx context.Context, port int, host string) ([]TLSA, Result, error) {
	rrs, res, err := c.query(ctx, "_"+strconv.Itoa(port)+"._tcp."+trim(host), mdns.TypeTLSA)
	if err != nil {
		return nil, res, err
	}
	out := make([]TLSA, 0, len(rrs))
	for _, rr := range rrs {
		t := rr.(*mdns.TLSA)
		data, err := hex.DecodeString(t.Certificate)
		if err != nil {
			continue
		}
		out = append(out, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
	}
	return out, res, nil
}
