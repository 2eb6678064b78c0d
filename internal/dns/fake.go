package dns

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
)

// Fake is an in-memory Resolver for tests. Names are matched without case and trailing dot. A name missing from
// every map is NXDOMAIN; a name present in another map is NODATA; a name in Fail fails temporarily. A name in CNAME
// is an alias: lookups follow it (as a recursive server would) and a CNAME loop fails temporarily (SERVFAIL).
type Fake struct {
	mu        sync.Mutex // guards every field
	MX        map[string][]MX
	IP        map[string][]netip.Addr
	TXT       map[string][]string // one string per record, a record's strings joined (as Client returns them)
	TLSA      map[string][]TLSA   // key "_25._tcp.host"
	PTR       map[string][]string // key: the address as netip.Addr.String() gives it; values: host names
	CNAME     map[string]string   // alias -> canonical name
	Fail      map[string]bool
	Authentic bool
	Queries   []string // "MX name", "IP name", ... in order
}

var _ Resolver = (*Fake)(nil)

func (f *Fake) exists(name string) bool {
	_, a := f.MX[name]
	_, b := f.IP[name]
	_, c := f.TXT[name]
	_, d := f.TLSA[name]
	_, e := f.PTR[name]
	return a || b || c || d || e
}

// lookup is the shared logic: temporary failure, records, NODATA or NXDOMAIN.
func lookup[T any](f *Fake, kind, name string, m map[string][]T) ([]T, Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = trim(name)
	f.Queries = append(f.Queries, kind+" "+name)
	// Follow aliases like a recursive server; more hops than any sane chain is a loop.
	for hops := 0; ; hops++ {
		target, ok := f.CNAME[name]
		if !ok || f.Fail[name] {
			break
		}
		if hops == 16 {
			return nil, Result{}, &TempError{Name: name, Err: fmt.Errorf("CNAME loop")}
		}
		name = trim(target)
	}
	if f.Fail[name] {
		return nil, Result{}, &TempError{Name: name, Err: fmt.Errorf("SERVFAIL")}
	}
	if v, ok := m[name]; ok && len(v) > 0 {
		return append([]T(nil), v...), Result{Authentic: f.Authentic}, nil
	}
	if f.exists(name) {
		return nil, Result{Authentic: f.Authentic}, fmt.Errorf("%s %s: %w", name, kind, ErrNoData)
	}
	return nil, Result{Authentic: f.Authentic}, fmt.Errorf("%s: %w", name, ErrNotFound)
}

// LookupMX implements Resolver.
func (f *Fake) LookupMX(_ context.Context, domain string) ([]MX, Result, error) {
	return lookup(f, "MX", domain, f.MX)
}

// LookupIP implements Resolver; an IP literal resolves to itself.
func (f *Fake) LookupIP(_ context.Context, host string) ([]netip.Addr, Result, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, Result{Authentic: true}, nil
	}
	return lookup(f, "IP", host, f.IP)
}

// LookupTXT implements Resolver.
func (f *Fake) LookupTXT(_ context.Context, name string) ([]string, Result, error) {
	return lookup(f, "TXT", name, f.TXT)
}

// LookupTLSA implements Resolver.
func (f *Fake) LookupTLSA(_ context.Context, port int, host string) ([]TLSA, Result, error) {
	return lookup(f, "TLSA", "_"+strconv.Itoa(port)+"._tcp."+trim(host), f.TLSA)
}
