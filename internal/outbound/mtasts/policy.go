// Package mtasts implements the sending side of SMTP MTA Strict Transport Security (RFC 8461): the _mta-sts TXT
// record, the HTTPS fetch of the policy, its parser, MX pattern matching and an in-memory cache that keeps
// serving an unexpired policy when the publisher is unreachable (the point of MTA-STS: an attacker who blocks
// the fetch must not downgrade delivery).
package mtasts

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is a policy's mode (RFC 8461 3.2).
type Mode string

// The modes of RFC 8461 5.
const (
	// ModeEnforce: deliver only to MX hosts that match the policy and present a certificate that verifies.
	ModeEnforce Mode = "enforce"
	// ModeTesting: deliver as usual, report what would have failed.
	ModeTesting Mode = "testing"
	// ModeNone: the domain has withdrawn its policy (RFC 8461 8.3).
	ModeNone Mode = "none"
)

// Limits of RFC 8461.
const (
	// MaxPolicySize is the largest policy body read (RFC 8461 3.3 suggests limiting to 64 KiB).
	MaxPolicySize = 64 << 10
	// MaxMaxAge is the largest max_age (RFC 8461 3.2: 31557600 seconds, about one year).
	MaxMaxAge = 31557600 * time.Second
)

// Policy is a parsed policy file.
type Policy struct {
	Mode   Mode
	MX     []string // patterns, lower case without trailing dot; "*.example.com" matches one label
	MaxAge time.Duration
}

// ErrSyntax wraps every parse failure of a policy or TXT record.
var ErrSyntax = errors.New("mta-sts syntax error")

func syntaxErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSyntax, fmt.Sprintf(format, args...))
}

// Parse parses a policy body (RFC 8461 3.2): "key: value" lines ended by LF or CRLF; version, mode and max_age
// are required, mx is required unless the mode is none and may repeat; unknown keys are ignored.
func Parse(b []byte) (*Policy, error) {
	if len(b) > MaxPolicySize {
		return nil, syntaxErr("policy larger than %d bytes", MaxPolicySize)
	}
	p := &Policy{}
	var version, maxAge bool
	for line := range bytes.Lines(b) {
		l := strings.TrimRight(string(line), "\r\n")
		if strings.TrimSpace(l) == "" {
			continue
		}
		key, val, ok := strings.Cut(l, ":")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return nil, syntaxErr("line %q is not key: value", trunc(l))
		}
		val = strings.Trim(val, " \t")
		switch strings.ToLower(key) {
		case "version":
			if val != "STSv1" || version {
				return nil, syntaxErr("version %q", trunc(val))
			}
			version = true
		case "mode":
			if p.Mode != "" {
				return nil, syntaxErr("mode given twice")
			}
			switch m := Mode(strings.ToLower(val)); m {
			case ModeEnforce, ModeTesting, ModeNone:
				p.Mode = m
			default:
				return nil, syntaxErr("mode %q", trunc(val))
			}
		case "max_age":
			n, err := strconv.ParseUint(val, 10, 64)
			if err != nil || len(val) > 10 || maxAge {
				return nil, syntaxErr("max_age %q", trunc(val))
			}
			maxAge = true
			p.MaxAge = time.Duration(min(n, uint64(MaxMaxAge/time.Second))) * time.Second
		case "mx":
			pat := strings.ToLower(strings.TrimSuffix(val, "."))
			if !validPattern(pat) {
				return nil, syntaxErr("mx %q", trunc(val))
			}
			p.MX = append(p.MX, pat)
		}
	}
	switch {
	case !version:
		return nil, syntaxErr("no version")
	case p.Mode == "":
		return nil, syntaxErr("no mode")
	case !maxAge:
		return nil, syntaxErr("no max_age")
	case len(p.MX) == 0 && p.Mode != ModeNone:
		return nil, syntaxErr("no mx in mode %s", p.Mode)
	}
	return p, nil
}

// Match reports whether host matches one of the policy's MX patterns (RFC 8461 4.1: exact, or "*." standing
// for exactly one leftmost label; case-insensitive).
func (p *Policy) Match(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			if label, parent, found := strings.Cut(host, "."); found && label != "" && parent == rest {
				return true
			}
		} else if pat == host {
			return true
		}
	}
	return false
}

// validPattern accepts ["*."] Domain (RFC 8461 3.2), where Domain is dot-separated LDH labels.
func validPattern(p string) bool {
	p = strings.TrimPrefix(p, "*.")
	if p == "" || len(p) > 253 {
		return false
	}
	for label := range strings.SplitSeq(p, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// ParseTXT parses an _mta-sts TXT record (RFC 8461 3.1: "v=STSv1; id=..."; v first, id of 1 to 32
// alphanumerics, other fields ignored) and returns its id.
func ParseTXT(s string) (string, error) {
	fields := strings.Split(s, ";")
	if strings.TrimSpace(fields[0]) != "v=STSv1" {
		return "", syntaxErr("TXT record does not start with v=STSv1")
	}
	var id string
	for _, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return "", syntaxErr("TXT field %q", trunc(f))
		}
		if k == "id" {
			if id != "" || !validID(v) {
				return "", syntaxErr("TXT id %q", trunc(v))
			}
			id = v
		}
	}
	if id == "" {
		return "", syntaxErr("TXT record has no id")
	}
	return id, nil
}

func validID(v string) bool {
	if v == "" || len(v) > 32 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// trunc shortens s for error messages: a hostile policy must not fill the log.
func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
