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
	// Timeout bounds one exchange; default 5s.
	Timeout time.Duration
}

// Client resolves with one DNS server over UDP, falling back to TCP for truncated answers.
type Client struct {
	server  string
	timeout time.Duration
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
	return &Client{server: server, timeout: o.Timeout}, nil
}

// Server returns the address of the DNS server the client asks.
func (c *Client) Server() string { return c.server }

// query asks for name/qtype and returns the answer records, following nothing itself: a recursive server
// returns the CNAME chain together with the records at its end.
func (c *Client) query(ctx context.Context, name string, qtype uint16) ([]mdns.RR, Result, error) {
	m := new(mdns.Msg)
	m.SetQuestion(fqdn(name), qtype)
	m.RecursionDesired = true
	// RFC 6840 5.7: setting AD in a query asks a validating resolver to report whether the answer is authentic.
	m.AuthenticatedData = true
	m.SetEdns0(1232, false)
	cl := &mdns.Client{Net: "udp", Timeout: c.timeout}
	r, _, err := cl.ExchangeContext(ctx, m, c.server)
	if err == nil && r.Truncated {
		cl.Net = "tcp"
		r, _, err = cl.ExchangeContext(ctx, m, c.server)
	}
	if err != nil {
		return nil, Result{}, &TempError{Name: name, Err: err}
	}
	res := Result{Authentic: r.AuthenticatedData}
	switch r.Rcode {
	case mdns.RcodeSuccess:
	case mdns.RcodeNameError:
		return nil, res, fmt.Errorf("%s: %w", trim(name), ErrNotFound)
	default:
		return nil, res, &TempError{Name: name, Err: errors.New(mdns.RcodeToString[r.Rcode])}
	}
	var out []mdns.RR
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == qtype {
			out = append(out, rr)
		}
	}
	if len(out) == 0 {
		return nil, res, fmt.Errorf("%s %s: %w", trim(name), mdns.TypeToString[qtype], ErrNoData)
	}
	return out, res, nil
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
