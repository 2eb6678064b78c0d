package outbound

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/postern/postern/internal/dns"
)

// hop is one host to try for a destination.
type hop struct {
	host        string // name (or IP literal) to resolve, connect to and check the certificate of
	port        int
	relay       bool // the smarthost: TLS required and verified, AUTH with the relay credentials
	implicitTLS bool
	mx          bool // an MX host (or the implicit MX) of the recipient domain: MTA-STS and DANE apply
	secure      bool // found by a DNSSEC-secure MX lookup (RFC 8689 5 for REQUIRETLS)
}

// failure is a made-up reply for a destination no server could be asked about.
type failure struct {
	code     int
	enhanced string
	text     string
}

// routeKey names the destination of a domain: recipients with one key share a transaction.
func (c *Client) routeKey(domain string) string {
	if c.opts.Relay != nil {
		return "relay"
	}
	if t, ok := c.transport(domain); ok {
		return "transport " + t
	}
	return "mx " + domain
}

// transport finds domain in the transport map: the domain itself, else ".parent" entries for its subdomains.
func (c *Client) transport(domain string) (string, bool) {
	if t, ok := c.opts.Transports[domain]; ok {
		return t, true
	}
	for d := domain; ; {
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return "", false
		}
		d = d[i+1:]
		if t, ok := c.opts.Transports["."+d]; ok {
			return t, true
		}
	}
}

// route returns the hops to try for domain, in order.
func (c *Client) route(ctx context.Context, domain string) ([]hop, *failure) {
	if r := c.opts.Relay; r != nil {
		host, port := splitHostPort(r.Addr, 587)
		return []hop{{host: host, port: port, relay: true, implicitTLS: r.ImplicitTLS}}, nil
	}
	if t, ok := c.transport(domain); ok {
		host, port := splitHostPort(t, c.opts.Port)
		return []hop{{host: host, port: port}}, nil
	}
	mxs, mxRes, err := c.opts.Resolver.LookupMX(ctx, domain)
	switch {
	case errors.Is(err, dns.ErrNoData):
		// RFC 5321 5.1: no MX records: the domain itself is the implicit MX, with preference 0.
		mxs = []dns.MX{{Host: domain, Pref: 0}}
	case errors.Is(err, dns.ErrNotFound):
		return nil, &failure{550, "5.1.2", "Domain " + domain + " does not exist"}
	case err != nil:
		return nil, &failure{451, "4.4.3", "MX lookup of " + domain + " failed: " + err.Error()}
	}
	if dns.IsNullMX(mxs) {
		// RFC 7505 3: the domain accepts no mail.
		return nil, &failure{556, "5.1.10", "Domain " + domain + " accepts no mail (null MX)"}
	}
	ordered, err := orderMX(mxs, c.opts.Hostname, c.shuffle)
	if err != nil {
		return nil, &failure{554, "5.4.6", "Mail for " + domain + " loops back to myself"}
	}
	hops := make([]hop, len(ordered))
	for i, mx := range ordered {
		hops[i] = hop{host: mx.Host, port: c.opts.Port, mx: true, secure: mxRes.Authentic}
	}
	return hops, nil
}

// errLoop: our own name is the best MX of the domain, and there is nobody better to hand the mail to.
var errLoop = errors.New("mail loops back to myself")

// orderMX sorts MX records by preference, shuffling those of equal preference (RFC 5321 5.1: spread the load),
// and drops records with an empty host or one naming the root. When self is among the hosts, only those
// strictly preferred to it remain (5.1: an MX host must not send to itself or to a less preferred backup).
func orderMX(mxs []dns.MX, self string, shuffle func(n int, swap func(i, j int))) ([]dns.MX, error) {
	out := make([]dns.MX, 0, len(mxs))
	for _, mx := range mxs {
		if mx.Host != "" && mx.Host != "." {
			out = append(out, dns.MX{Host: strings.ToLower(strings.TrimSuffix(mx.Host, ".")), Pref: mx.Pref})
		}
	}
	if shuffle != nil {
		shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	slices.SortStableFunc(out, func(a, b dns.MX) int { return int(a.Pref) - int(b.Pref) })
	self = strings.ToLower(strings.TrimSuffix(self, "."))
	if i := slices.IndexFunc(out, func(mx dns.MX) bool { return mx.Host == self }); i >= 0 {
		pref := out[i].Pref
		out = slices.DeleteFunc(out, func(mx dns.MX) bool { return mx.Pref >= pref })
		if len(out) == 0 {
			return nil, errLoop
		}
	}
	return out, nil
}

func (c *Client) shuffle(n int, swap func(i, j int)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rnd.Shuffle(n, swap)
}

// splitHostPort splits "host:port", "[ip]:port", "[ip]" or "host"; the port defaults to def.
func splitHostPort(s string, def int) (string, int) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(p); err == nil {
			return strings.Trim(h, "[]"), n
		}
	}
	return strings.Trim(s, "[]"), def
}
