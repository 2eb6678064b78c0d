// Package dns is Postern's view of the DNS: a small Resolver interface (MX, addresses, TXT, TLSA), with the
// DNSSEC "authentic data" bit that DANE needs, a client that asks one configured server (config dns.resolver)
// or the system's and keeps answers for their TTL (config dns.cache_size, cache.go), and a Fake for tests.
//
// Outbound delivery must tell a name that does not exist (a permanent failure: bounce) from a server that did not
// answer (a temporary one: retry), so lookups fail with ErrNotFound, ErrNoData or a *TempError.
package dns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Lookup outcomes that are not temporary. Decide with errors.Is.
var (
	// ErrNotFound: the name does not exist (NXDOMAIN).
	ErrNotFound = errors.New("no such domain")
	// ErrNoData: the name exists but has no record of the asked type (NOERROR with an empty answer).
	ErrNoData = errors.New("no records of this type")
)

// TempError is a failure that may go away: timeout, SERVFAIL, refused, network error.
type TempError struct {
	Name string
	Err  error
}

func (e *TempError) Error() string { return fmt.Sprintf("dns lookup of %s: %v", e.Name, e.Err) }
func (e *TempError) Unwrap() error { return e.Err }

// IsTemporary reports whether err is a *TempError.
func IsTemporary(err error) bool {
	var t *TempError
	return errors.As(err, &t)
}

// MX is one mail exchanger. Host "." with preference 0 as the only record is a null MX (RFC 7505).
type MX struct {
	Host string // without the trailing dot, lower-case
	Pref uint16
}

// TLSA is one DANE record (RFC 6698 2.1).
type TLSA struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte // certificate association data
}

// Result says how an answer was obtained.
type Result struct {
	// Authentic is the AD bit of a validating resolver's answer (RFC 4035 3.2.3): the records are DNSSEC-secure.
	// DANE (RFC 7672 2.2) may only be used with authentic records.
	Authentic bool
}

// Resolver looks names up. Names may be given with or without the trailing dot.
type Resolver interface {
	LookupMX(ctx context.Context, domain string) ([]MX, Result, error)
	// LookupIP returns the A and AAAA addresses of host (IPv4 first).
	LookupIP(ctx context.Context, host string) ([]netip.Addr, Result, error)
	LookupTXT(ctx context.Context, name string) ([]string, Result, error)
	// LookupTLSA looks up _port._tcp.host (RFC 6698 3).
	LookupTLSA(ctx context.Context, port int, host string) ([]TLSA, Result, error)
}

// IsNullMX reports whether mxs is a null MX (RFC 7505 3: one record, preference 0, host ".").
func IsNullMX(mxs []MX) bool {
	return len(mxs) == 1 && mxs[0].Pref == 0 && (mxs[0].Host == "" || mxs[0].Host == ".")
}

// fqdn returns name in lower case with one trailing dot.
func fqdn(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}

// trim returns name in lower case without the trailing dot; the root stays ".".
func trim(name string) string {
	if name == "." {
		return "."
	}
	return strings.ToLower(strings.TrimSuffix(name, "."))
}
