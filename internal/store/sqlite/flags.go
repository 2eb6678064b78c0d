package sqlite

import (
	"fmt"
	"strings"

	"github.com/postern/postern/internal/store"
)

// systemFlags are the system flags a message can store, in their canonical spelling (RFC 9051 2.3.2). \Recent is
// not among them: IMAP4rev2 dropped it and IMAP4rev1 sessions derive it; it is never stored.
var systemFlags = []string{`\Answered`, `\Flagged`, `\Deleted`, `\Seen`, `\Draft`}

const recentFlag = `\Recent`

// canonFlag spells a system flag canonically (`\seen` -> `\Seen`); keywords are kept as given.
func canonFlag(f string) string {
	if !strings.HasPrefix(f, `\`) {
		return f
	}
	for _, sf := range systemFlags {
		if strings.EqualFold(f, sf) {
			return sf
		}
	}
	return f
}

// checkFlag rejects what cannot be a flag: flags are stored space-separated, so a flag is one non-empty run of
// printable ASCII without spaces (IMAP's flag-keyword is an atom, RFC 9051 9).
func checkFlag(f string) error {
	if f == "" {
		return fmt.Errorf("empty flag")
	}
	for i := 0; i < len(f); i++ {
		if c := f[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("flag %q: invalid character %q", f, c)
		}
	}
	return nil
}

// normFlags checks and canonicalises flags: system flags spelled canonically, \Recent dropped, duplicates (compared
// case-insensitively, RFC 9051 2.3.2) removed keeping the first spelling, order kept.
func normFlags(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, f := range in {
		if err := checkFlag(f); err != nil {
			return nil, err
		}
		f = canonFlag(f)
		if strings.EqualFold(f, recentFlag) || hasFlag(out, f) {
			continue
		}
		out = append(out, f)
	}
	return out, nil
}

// validFlags is normFlags dropping invalid flags instead of failing (delivery must not fail on a filter's flag).
func validFlags(in []string) []string {
	out := make([]string, 0, len(in))
	for _, f := range in {
		if checkFlag(f) == nil {
			out = append(out, f)
		}
	}
	out, _ = normFlags(out)
	return out
}

// hasFlag reports whether flags holds f, compared case-insensitively.
func hasFlag(flags []string, f string) bool {
	for _, g := range flags {
		if strings.EqualFold(g, f) {
			return true
		}
	}
	return false
}

// sameFlags reports whether a and b hold the same flags, compared case-insensitively (both without duplicates).
func sameFlags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, f := range a {
		if !hasFlag(b, f) {
			return false
		}
	}
	return true
}

// applyFlags returns cur changed by op with flags (normalised) and whether that changes anything. A flag already
// present keeps its stored spelling.
func applyFlags(cur []string, op store.FlagOp, flags []string) ([]string, bool) {
	switch op {
	case store.FlagsReplace:
		if sameFlags(cur, flags) {
			return cur, false
		}
		out := make([]string, 0, len(flags))
		for _, f := range flags {
			out = append(out, spelledAs(cur, f))
		}
		return out, true
	case store.FlagsAdd:
		out := cur
		for _, f := range flags {
			if !hasFlag(out, f) {
				if len(out) == len(cur) {
					out = append([]string(nil), cur...)
				}
				out = append(out, f)
			}
		}
		return out, len(out) != len(cur)
	case store.FlagsRemove:
		out := make([]string, 0, len(cur))
		for _, f := range cur {
			if !hasFlag(flags, f) {
				out = append(out, f)
			}
		}
		if len(out) == len(cur) {
			return cur, false
		}
		return out, true
	}
	return cur, false
}

// spelledAs returns f as cur spells it, if cur holds it.
func spelledAs(cur []string, f string) string {
	for _, g := range cur {
		if strings.EqualFold(g, f) {
			return g
		}
	}
	return f
}

func joinFlags(flags []string) string { return strings.Join(flags, " ") }

func splitFlags(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Fields(s)
}
