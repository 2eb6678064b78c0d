package spf

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// The library evaluates a record term by term and stops at the first match, so a syntax error after a matching
// term goes unnoticed, and it does not check domain-spec syntax at all. RFC 7208 4.6: "If there are any syntax
// errors anywhere in the record, check_host() returns immediately with the result 'permerror', without further
// interpretation or evaluation." checkRecord is that check, on the ABNF of RFC 7208 12; the resolver adapter
// replaces a record that fails it with one the library answers with permerror, so the rule also holds for
// records reached through include and redirect.

var errSyntax = errors.New("spf record syntax error")

// poisoned is what an invalid record is replaced with: "%" is no mechanism, so evaluation ends in permerror.
const poisoned = "v=spf1 %syntax-error"

// isSPFRecord reports whether txt is an SPF record (RFC 7208 4.5: version "v=spf1" followed by a space or the end).
func isSPFRecord(txt string) bool {
	return len(txt) >= 6 && strings.EqualFold(txt[:6], "v=spf1") && (len(txt) == 6 || txt[6] == ' ')
}

// checkRecord returns nil when rec (an SPF record, see isSPFRecord) follows the grammar of RFC 7208 12.
func checkRecord(rec string) error {
	terms := strings.Split(rec[6:], " ") // terms = *( 1*SP ( directive / modifier ) ); only SP separates
	redirects, exps := 0, 0
	for _, t := range terms {
		if t == "" {
			continue
		}
		for i := 0; i < len(t); i++ {
			if t[i] < 0x21 || t[i] > 0x7e { // macro-literal and the rest of the grammar are visible US-ASCII
				return fmt.Errorf("%w: character %#x in %q", errSyntax, t[i], t)
			}
		}
		name, value, isMod := modifier(t)
		if !isMod {
			if err := checkDirective(t); err != nil {
				return err
			}
			continue
		}
		var err error
		switch strings.ToLower(name) {
		case "redirect":
			redirects++
			err = checkDomainSpec(value)
		case "exp":
			exps++
			err = checkDomainSpec(value)
		default:
			_, err = checkMacroString(value, false)
		}
		if err != nil {
			return fmt.Errorf("%s=: %w", name, err)
		}
	}
	// RFC 7208 6: redirect and exp MUST NOT appear more than once each.
	if redirects > 1 || exps > 1 {
		return fmt.Errorf("%w: redirect or exp given twice", errSyntax)
	}
	return nil
}

// modifier splits name=value when t is a modifier: name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ).
func modifier(t string) (name, value string, ok bool) {
	name, value, ok = strings.Cut(t, "=")
	if !ok || name == "" || !isAlpha(name[0]) {
		return "", "", false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isAlpha(c) && !isDigit(c) && c != '-' && c != '_' && c != '.' {
			return "", "", false
		}
	}
	return name, value, true
}

func checkDirective(t string) error {
	if strings.ContainsRune("+-?~", rune(t[0])) {
		t = t[1:]
	}
	end := strings.IndexAny(t, ":/")
	if end < 0 {
		end = len(t)
	}
	mech, rest := strings.ToLower(t[:end]), t[end:]
	var err error
	switch mech {
	case "all":
		if rest != "" {
			err = errSyntax
		}
	case "include", "exists":
		err = colonDomain(rest, true)
	case "ptr":
		err = colonDomain(rest, false)
	case "a", "mx":
		spec, cidr := splitDualCIDR(rest)
		if err = colonDomain(spec, false); err == nil {
			err = checkDualCIDR(cidr)
		}
	case "ip4":
		err = checkIP(rest, true)
	case "ip6":
		err = checkIP(rest, false)
	default:
		err = errSyntax
	}
	if err != nil {
		return fmt.Errorf("%q: %w", t, err)
	}
	return nil
}

// colonDomain checks [ ":" domain-spec ] (required when must).
func colonDomain(s string, must bool) error {
	if s == "" && !must {
		return nil
	}
	spec, ok := strings.CutPrefix(s, ":")
	if !ok {
		return errSyntax
	}
	return checkDomainSpec(spec)
}

// splitDualCIDR splits the dual-cidr-length ([ "/" ip4-len ] [ "//" ip6-len ]) off the end of a or mx's argument.
func splitDualCIDR(s string) (spec, cidr string) {
	m := dualCIDR.FindStringSubmatch(s)
	return m[1], m[2]
}

var dualCIDR = regexp.MustCompile(`^(.*?)((?:/[0-9]+)?(?://[0-9]+)?)$`)

func checkDualCIDR(c string) error {
	if c == "" {
		return nil
	}
	v4, v6, hasV6 := strings.Cut(c, "//")
	if v4 != "" {
		n, ok := strings.CutPrefix(v4, "/")
		if !ok || strings.Contains(n, "/") || !cidrLen(n, 32) {
			return errSyntax
		}
	}
	if hasV6 && (strings.Contains(v6, "/") || !cidrLen(v6, 128)) {
		return errSyntax
	}
	return nil
}

// cidrLen checks "0" / %x31-39 *DIGIT within max (RFC 7208 12: no leading zeros).
func cidrLen(s string, max int) bool {
	if s == "" || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
		return false
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= max
}

func checkIP(rest string, v4 bool) error {
	s, ok := strings.CutPrefix(rest, ":")
	if !ok {
		return errSyntax
	}
	ip, length, hasLen := strings.Cut(s, "/")
	max := 128
	if v4 {
		max = 32
		// ip4-network = qnum "." qnum "." qnum "." qnum; qnum has no leading zeros.
		for _, q := range strings.Split(ip, ".") {
			if len(q) > 1 && q[0] == '0' {
				return errSyntax
			}
		}
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" || a.Is4() != v4 || (!v4 && !strings.Contains(ip, ":")) {
		return errSyntax
	}
	if hasLen && !cidrLen(length, max) {
		return errSyntax
	}
	return nil
}

// checkDomainSpec checks domain-spec = macro-string domain-end; domain-end = ( "." toplabel [ "." ] ) /
// macro-expand.
func checkDomainSpec(s string) error {
	endsWithMacro, err := checkMacroString(s, false)
	if err != nil {
		return err
	}
	if s == "" {
		return fmt.Errorf("%w: empty domain-spec", errSyntax)
	}
	if endsWithMacro {
		return nil
	}
	s = strings.TrimSuffix(s, ".")
	dot := strings.LastIndexByte(s, '.')
	if dot < 0 || !isTopLabel(s[dot+1:]) {
		return fmt.Errorf("%w: %q does not end in a top label", errSyntax, s)
	}
	return nil
}

// isTopLabel: toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum ).
func isTopLabel(l string) bool {
	if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	alpha, hyphen := false, false
	for i := 0; i < len(l); i++ {
		switch c := l[i]; {
		case isAlpha(c):
			alpha = true
		case c == '-':
			hyphen = true
		case !isDigit(c):
			return false
		}
	}
	return alpha || hyphen
}

// checkMacroString checks macro-string (RFC 7208 7.1) and reports whether it ends with a macro-expand. The
// letters c, r and t are allowed only in explanation text (exp).
func checkMacroString(s string, exp bool) (endsWithMacro bool, err error) {
	for i := 0; i < len(s); i++ {
		endsWithMacro = false
		if s[i] != '%' {
			continue
		}
		if i+1 >= len(s) {
			return false, fmt.Errorf("%w: lone %% in %q", errSyntax, s)
		}
		i++
		switch s[i] {
		case '%', '_', '-':
			endsWithMacro = true
			continue
		case '{':
		default:
			return false, fmt.Errorf("%w: bad macro in %q", errSyntax, s)
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return false, fmt.Errorf("%w: unterminated macro in %q", errSyntax, s)
		}
		if !validMacroBody(s[i+1:i+end], exp) {
			return false, fmt.Errorf("%w: bad macro in %q", errSyntax, s)
		}
		i += end
		endsWithMacro = true
	}
	return endsWithMacro, nil
}

// validMacroBody checks macro-letter transformers *delimiter (what is between "%{" and "}").
func validMacroBody(b string, exp bool) bool {
	if b == "" {
		return false
	}
	letter := b[0] | 0x20
	if !strings.ContainsRune("slodiphv", rune(letter)) && !(exp && strings.ContainsRune("crt", rune(letter))) {
		return false
	}
	b = b[1:]
	for len(b) > 0 && isDigit(b[0]) {
		b = b[1:]
	}
	b = strings.TrimPrefix(b, "r")
	b = strings.TrimPrefix(b, "R")
	for i := 0; i < len(b); i++ {
		if !strings.ContainsRune(".-+,/_=", rune(b[i])) {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
