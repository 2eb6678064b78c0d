package dmarc

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// Policy is a requested handling of failing mail (RFC 7489 6.3 "p" and "sp").
type Policy string

// The policies.
const (
	PolicyNone       Policy = "none"
	PolicyQuarantine Policy = "quarantine"
	PolicyReject     Policy = "reject"
)

// Record is a parsed DMARC policy record: the tags this receiver acts on (reporting tags are not used yet).
type Record struct {
	Policy          Policy
	SubdomainPolicy Policy // "" when sp= is absent: p applies
	StrictDKIM      bool   // adkim=s
	StrictSPF       bool   // aspf=s
	Percent         int    // pct, 0..100 (default 100)
	RUA             []string
}

var errNotDMARC = errors.New("not a DMARC record")

// ParseRecord parses a DMARC TXT record (RFC 7489 6.3, 6.4). Tag names and values are matched without case
// (ABNF strings are case-insensitive); unknown tags are ignored (6.3: "MUST be ignored"), and so are invalid values
// of the optional tags (6.3: "syntax errors in the remainder of the record SHOULD be discarded in favor of default
// values"). A record without "v=DMARC1" as its first tag is not a DMARC record. A record with a missing or invalid
// p= or sp= but a rua= is used as p=none (6.6.3 step 6); without rua= it is an error.
func ParseRecord(txt string) (*Record, error) {
	tags := strings.Split(txt, ";")
	k, v, ok := strings.Cut(tags[0], "=")
	if !ok || strings.TrimSpace(k) != "v" || strings.TrimSpace(v) != "DMARC1" {
		return nil, errNotDMARC // 6.4: v=DMARC1 first, exactly (the value is case-sensitive in practice too)
	}
	r := &Record{Percent: 100}
	var badPolicy error
	seenP := false
	for _, t := range tags[1:] {
		k, v, ok := strings.Cut(t, "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if !ok {
			continue // a trailing ";" is allowed; anything else malformed is ignored (6.3)
		}
		switch k {
		case "p":
			seenP = true
			r.Policy, badPolicy = parsePolicy(v)
		case "sp":
			if sp, err := parsePolicy(v); err == nil {
				r.SubdomainPolicy = sp
			} else {
				badPolicy = err
			}
		case "adkim", "aspf":
			strict := strings.EqualFold(v, "s") // anything else: the default, relaxed
			if k == "adkim" {
				r.StrictDKIM = strict
			} else {
				r.StrictSPF = strict
			}
		case "pct":
			if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= 100 {
				r.Percent = n
			}
		case "rua":
			for _, u := range strings.Split(v, ",") {
				if u = strings.TrimSpace(u); strings.HasPrefix(strings.ToLower(u), "mailto:") {
					r.RUA = append(r.RUA, u)
				}
			}
		}
	}
	if !seenP || badPolicy != nil {
		if len(r.RUA) == 0 {
			return nil, fmt.Errorf("dmarc: no valid p= tag")
		}
		r.Policy, r.SubdomainPolicy = PolicyNone, "" // 6.6.3 step 6: act as p=none
	}
	return r, nil
}

func parsePolicy(v string) (Policy, error) {
	switch p := Policy(strings.ToLower(v)); p {
	case PolicyNone, PolicyQuarantine, PolicyReject:
		return p, nil
	}
	return "", fmt.Errorf("dmarc: bad policy %q", v)
}

// OrgDomain returns the Organizational Domain of domain (RFC 7489 3.2): the public suffix plus one label, from
// the Public Suffix List compiled into golang.org/x/net/publicsuffix. The domain is lower-cased and converted to
// A-labels first. A domain that is itself a public suffix, or not a domain, is an error.
func OrgDomain(domain string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	if d == "" || strings.HasPrefix(d, ".") || strings.Contains(d, "..") {
		return "", fmt.Errorf("dmarc: %q is not a domain", domain)
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("dmarc: %q: %w", domain, err)
	}
	return publicsuffix.EffectiveTLDPlusOne(a)
}

// aligned reports whether an authenticated domain is aligned with the From domain (RFC 7489 3.1): equal in
// strict mode, the same Organizational Domain in relaxed mode.
func aligned(authDomain, fromDomain string, strict bool) bool {
	a, f := strings.ToLower(strings.TrimSuffix(authDomain, ".")), strings.ToLower(strings.TrimSuffix(fromDomain, "."))
	if a == "" || f == "" {
		return false
	}
	if a == f {
		return true
	}
	if strict {
		return false
	}
	oa, err1 := OrgDomain(a)
	of, err2 := OrgDomain(f)
	return err1 == nil && err2 == nil && oa == of
}
