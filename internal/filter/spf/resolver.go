package spf

import (
	"context"
	"errors"
	"net"
	"net/netip"

	"github.com/postern/postern/internal/dns"
)

// resolver adapts a dns.Resolver to the library's DNSResolver (the shape of *net.Resolver), so SPF asks the server
// configured in dns.resolver and tests can use dns.Fake.
//
// The library tells outcomes apart by *net.DNSError: IsNotFound is NXDOMAIN (a "void lookup", RFC 7208 4.6.4, and
// "none" for the record lookup, 4.3); Temporary() is a temperror (RFC 7208 2.6.6). NODATA is an empty answer
// without error, which the library also counts as void.
type resolver struct {
	r dns.Resolver
}

func (a resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txt, _, err := a.r.LookupTXT(ctx, name)
	for i, t := range txt {
		if isSPFRecord(t) && checkRecord(t) != nil {
			txt[i] = poisoned // RFC 7208 4.6: a syntax error anywhere is a permerror; see syntax.go
		}
	}
	return txt, netError(name, err)
}

func (a resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	mxs, _, err := a.r.LookupMX(ctx, name)
	if err != nil {
		return nil, netError(name, err)
	}
	out := make([]*net.MX, 0, len(mxs))
	for _, mx := range mxs {
		out = append(out, &net.MX{Host: mx.Host + ".", Pref: mx.Pref})
	}
	return out, nil
}

func (a resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	// RFC 7208 5.3/5.4: a and mx look up A or AAAA by the connection's family; the library compares each address
	// it gets, so asking for both is equivalent.
	ips, _, err := a.r.LookupIP(ctx, host)
	if err != nil {
		return nil, netError(host, err)
	}
	out := make([]net.IPAddr, 0, len(ips))
	for _, ip := range ips {
		out = append(out, net.IPAddr{IP: net.IP(ip.AsSlice())})
	}
	return out, nil
}

// LookupAddr answers the "ptr" mechanism and the %{p} macro. A resolver without PTR support answers NXDOMAIN,
// which makes ptr not match (RFC 7208 5.5: errors in the reverse lookup are not the domain owner's fault).
func (a resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	pr, ok := a.r.(dns.PTRResolver)
	if !ok {
		return nil, &net.DNSError{Err: "no PTR support", Name: addr, IsNotFound: true}
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: addr, IsNotFound: true}
	}
	names, _, err := pr.LookupPTR(ctx, ip)
	if err != nil {
		return nil, netError(addr, err)
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, n+".")
	}
	return out, nil
}

// netError maps our lookup errors onto the *net.DNSError the library understands.
func netError(name string, err error) error {
	switch {
	case err == nil, errors.Is(err, dns.ErrNoData):
		return nil
	case errors.Is(err, dns.ErrNotFound):
		return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	case dns.IsTemporary(err), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
	}
	// Anything else (a malformed name, say) is permanent but not "not found".
	return &net.DNSError{Err: err.Error(), Name: name}
}
