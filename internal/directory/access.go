package directory

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/store"
)

// accessTable is the access table parsed for one lookup.
type accessTable struct {
	addrs    map[netip.Addr]string // exact client IPs
	prefixes map[netip.Prefix]string
	names    map[string]string // addresses, "local@" forms and domains, normalized
}

// Access returns the access-table action (store.ActionOK, ActionRelay, ActionReject or ActionDiscard) for a client
// ip and keys (addresses or domains), with sendmail's access db order: the IP exactly, then the longest CIDR
// holding it, then for each key in turn the address, its "local@" form, its domain and each parent domain
// (b.org matches x.b.org). Matching ignores case. "" means no rule matched. An invalid ip (the zero netip.Addr)
// skips the IP rules, for checks on keys alone.
func (d *Directory) Access(ctx context.Context, ip netip.Addr, keys ...string) (string, error) {
	rules, err := d.opts.Store.ListAccess(ctx)
	if err != nil {
		return "", fmt.Errorf("list access rules: %w", err)
	}
	if len(rules) == 0 {
		return "", nil
	}
	t := d.parseAccess(rules)
	if ip.IsValid() {
		if a := t.matchIP(ip.Unmap().WithZone("")); a != "" {
			return a, nil
		}
	}
	for _, k := range keys {
		k = normalizeName(k)
		if k == "" {
			continue
		}
		for _, cand := range accessCandidates(k) {
			if a, ok := t.names[cand]; ok {
				return a, nil
			}
		}
	}
	return "", nil
}

// parseAccess sorts the rules by kind. Rules with an unknown action are logged and ignored.
func (d *Directory) parseAccess(rules []store.AccessRule) *accessTable {
	t := &accessTable{addrs: map[netip.Addr]string{}, prefixes: map[netip.Prefix]string{}, names: map[string]string{}}
	for _, r := range rules {
		action := strings.ToUpper(strings.TrimSpace(r.Action))
		switch action {
		case store.ActionOK, store.ActionRelay, store.ActionReject, store.ActionDiscard:
		default:
			d.opts.Logger.Warn("access rule with unknown action ignored", "pattern", r.Pattern, "action", r.Action)
			continue
		}
		p := strings.TrimSpace(r.Pattern)
		if a, err := netip.ParseAddr(p); err == nil {
			t.addrs[a.Unmap().WithZone("")] = action
		} else if pfx, err := netip.ParsePrefix(p); err == nil {
			t.prefixes[pfx.Masked()] = action
		} else if n := normalizeName(p); n != "" {
			t.names[n] = action
		}
	}
	return t
}

// matchIP returns the action for ip: an exact rule, else the longest prefix containing it.
func (t *accessTable) matchIP(ip netip.Addr) string {
	if a, ok := t.addrs[ip]; ok {
		return a
	}
	best, bits := "", -1
	for pfx, a := range t.prefixes {
		if pfx.Bits() > bits && pfx.Contains(ip) {
			best, bits = a, pfx.Bits()
		}
	}
	return best
}

// normalizeName lower-cases an address, "local@" or domain and puts the domain in A-label form, so a rule and a
// key written with different case or as U-labels and A-labels still meet.
func normalizeName(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
	i := strings.LastIndexByte(s, '@')
	local, domain := s[:i+1], s[i+1:] // local keeps its "@"; both empty parts are fine
	if domain == "" {
		return local
	}
	if n, err := mail.NormalizeDomain(domain); err == nil {
		domain = n
	}
	return local + domain
}

// accessCandidates lists the lookups for one normalized key in order: address, local@, domain, parent domains.
func accessCandidates(k string) []string {
	var out []string
	domain := k
	if i := strings.LastIndexByte(k, '@'); i >= 0 {
		out = append(out, k)
		if i > 0 {
			out = append(out, k[:i+1])
		}
		domain = k[i+1:]
	}
	for domain != "" {
		out = append(out, domain)
		_, rest, ok := strings.Cut(domain, ".")
		if !ok {
			break
		}
		domain = rest
	}
	return out
}

// ValidateAccess checks an access rule given on the command line. pattern is an IP address, a CIDR, a domain,
// an address or "local@"; action is OK, RELAY, REJECT or DISCARD in any case.
func ValidateAccess(pattern, action string) error {
	switch strings.ToUpper(action) {
	case store.ActionOK, store.ActionRelay, store.ActionReject, store.ActionDiscard:
	default:
		return fmt.Errorf("action %q is not one of OK, RELAY, REJECT, DISCARD", action)
	}
	if a, err := netip.ParseAddr(pattern); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("pattern %q: an IPv6 zone cannot match a client address", pattern)
		}
		return nil
	}
	if _, err := netip.ParsePrefix(pattern); err == nil {
		return nil
	}
	if i := strings.LastIndexByte(pattern, '@'); i >= 0 {
		if i == len(pattern)-1 { // local@: any domain
			if _, err := mail.ParseAddress(pattern + "example.org"); err != nil || i == 0 {
				return fmt.Errorf("pattern %q is not a valid local@ form", pattern)
			}
			return nil
		}
		if _, err := mail.ParseAddress(pattern); err != nil {
			return fmt.Errorf("pattern %q: %w", pattern, err)
		}
		return nil
	}
	return validateDomainPattern(pattern)
}

// validateDomainPattern accepts a domain with at least one dot (or localhost). A last label of digits only is
// refused: no such top-level domain exists (RFC 3696 2), so "10.1" is an IP prefix meant as CIDR.
func validateDomainPattern(pattern string) error {
	d, err := mail.NormalizeDomain(pattern)
	if err != nil || strings.HasPrefix(d, "[") || !strings.Contains(d, ".") && d != "localhost" {
		return fmt.Errorf("pattern %q is not an IP, CIDR, domain, address or local@", pattern)
	}
	last := d[strings.LastIndexByte(d, '.')+1:]
	if strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("pattern %q looks like a partial IP address: write it as a CIDR (e.g. 10.1.0.0/16)", pattern)
	}
	return nil
}
