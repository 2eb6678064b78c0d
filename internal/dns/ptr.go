package dns

import (
	"context"
	"net/netip"

	mdns "github.com/miekg/dns"
)

// PTRResolver is a Resolver that also looks up reverse names (PTR records, RFC 1035 3.5). SPF's "ptr" mechanism and
// %{p} macro need it (RFC 7208 5.5, 7.3); it is a separate interface so that Resolver stays small for the callers that
// never ask for PTR. Client and Fake implement it.
type PTRResolver interface {
	Resolver
	// LookupPTR returns the names (without the trailing dot, lower-case) that ip's reverse name points to.
	LookupPTR(ctx context.Context, ip netip.Addr) ([]string, Result, error)
}

var (
	_ PTRResolver = (*Client)(nil)
	_ PTRResolver = (*Fake)(nil)
)

// LookupPTR returns the PTR targets of ip's in-addr.arpa or ip6.arpa name.
func (c *Client) LookupPTR(ctx context.Context, ip netip.Addr) ([]string, Result, error) {
	name, err := mdns.ReverseAddr(ip.Unmap().String())
	if err != nil {
		return nil, Result{}, err
	}
	rrs, res, err := c.query(ctx, name, mdns.TypePTR)
	if err != nil {
		return nil, res, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, trim(rr.(*mdns.PTR).Ptr))
	}
	return out, res, nil
}

// LookupPTR implements PTRResolver with the PTR map (keyed by the address in its text form).
func (f *Fake) LookupPTR(_ context.Context, ip netip.Addr) ([]string, Result, error) {
	return lookup(f, "PTR", ip.Unmap().String(), f.PTR)
}
