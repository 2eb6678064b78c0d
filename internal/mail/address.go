// Package mail holds leaf value types shared by every layer: addresses and envelopes.
package mail

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Limits from RFC 5321 4.5.3.1.1 and 4.5.3.1.2.
const (
	MaxLocalPart = 64
	MaxDomain    = 255
	MaxPath      = 256
)

// ErrBadAddress is wrapped by every ParseAddress error.
var ErrBadAddress = errors.New("bad address")

// Address is a parsed mailbox address. Local keeps its case (RFC 5321 2.4: the local part may be case
// sensitive); Domain is lower-case in A-label (punycode) form.
type Address struct {
	Local  string
	Domain string
}

// String returns local@domain.
func (a Address) String() string {
	if a.Local == "" && a.Domain == "" {
		return ""
	}
	return a.Local + "@" + a.Domain
}

// Key returns the form used for lookups: local part lower-cased (as every common MTA does for virtual users),
// domain in A-label form.
func (a Address) Key() string {
	return strings.ToLower(a.Local) + "@" + a.Domain
}

// IsZero reports whether a is the null reverse-path <>.
func (a Address) IsZero() bool { return a.Local == "" && a.Domain == "" }

// ParseAddress parses an RFC 5321 Mailbox (local-part "@" domain), as found inside MAIL FROM:<...> and
// RCPT TO:<...>, without the angle brackets. UTF-8 local parts (RFC 6531) and IDN domains are accepted;
// the domain is normalized to lower-case A-labels. Address literals ([1.2.3.4]) are kept as given.
func ParseAddress(s string) (Address, error) {
	if !utf8.ValidString(s) {
		return Address{}, fmt.Errorf("%w: not valid UTF-8", ErrBadAddress)
	}
	if len(s) > MaxPath {
		return Address{}, fmt.Errorf("%w: longer than %d octets", ErrBadAddress, MaxPath)
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return Address{}, fmt.Errorf("%w: %q has no local@domain form", ErrBadAddress, s)
	}
	local, domain := s[:at], s[at+1:]
	if err := checkLocal(local); err != nil {
		return Address{}, err
	}
	d, err := NormalizeDomain(domain)
	if err != nil {
		return Address{}, err
	}
	return Address{Local: local, Domain: d}, nil
}

// NormalizeDomain lower-cases a domain and converts U-labels to A-labels. It rejects empty labels,
// labels over 63 octets and characters outside LDH, except for address literals.
func NormalizeDomain(domain string) (string, error) {
	if strings.HasPrefix(domain, "[") {
		if !strings.HasSuffix(domain, "]") || len(domain) < 3 {
			return "", fmt.Errorf("%w: bad address literal %q", ErrBadAddress, domain)
		}
		return domain, nil
	}
	domain = strings.TrimSuffix(domain, ".")
	if !utf8.ValidString(domain) {
		return "", fmt.Errorf("%w: domain is not valid UTF-8", ErrBadAddress)
	}
	if domain == "" || len(domain) > MaxDomain {
		return "", fmt.Errorf("%w: bad domain %q", ErrBadAddress, domain)
	}
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		return "", fmt.Errorf("%w: domain %q: %v", ErrBadAddress, domain, err)
	}
	ascii = strings.ToLower(ascii)
	for _, label := range strings.Split(ascii, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("%w: bad domain %q", ErrBadAddress, domain)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%w: bad character in domain %q", ErrBadAddress, domain)
			}
		}
	}
	return ascii, nil
}

// checkLocal accepts a Dot-string or a Quoted-string (RFC 5321 4.1.2), allowing UTF-8 (RFC 6531 3.3).
func checkLocal(local string) error {
	if len(local) > MaxLocalPart {
		return fmt.Errorf("%w: local part longer than %d octets", ErrBadAddress, MaxLocalPart)
	}
	if strings.HasPrefix(local, `"`) {
		if len(local) < 2 || !strings.HasSuffix(local, `"`) {
			return fmt.Errorf("%w: unterminated quoted local part", ErrBadAddress)
		}
		inner := local[1 : len(local)-1]
		for i := 0; i < len(inner); i++ {
			c := inner[i]
			if c == '\\' {
				i++
				if i == len(inner) {
					return fmt.Errorf("%w: bad quoted local part", ErrBadAddress)
				}
				continue
			}
			if c < 32 || c == 127 || c == '"' {
				return fmt.Errorf("%w: bad character in quoted local part", ErrBadAddress)
			}
		}
		return nil
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return fmt.Errorf("%w: misplaced dot in local part %q", ErrBadAddress, local)
	}
	for _, r := range local {
		if r < 128 && !isAtext(byte(r)) && r != '.' {
			return fmt.Errorf("%w: bad character %q in local part", ErrBadAddress, r)
		}
	}
	return nil
}

// isAtext reports RFC 5322 3.2.3 atext.
func isAtext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}
