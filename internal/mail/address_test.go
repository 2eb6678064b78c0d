package mail

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in      string
		want    string // String(); "" means an error is expected
		wantKey string
	}{
		{"alice@example.org", "alice@example.org", "alice@example.org"},
		{"Alice@Example.ORG", "Alice@example.org", "alice@example.org"},
		{"user+tag@example.org", "user+tag@example.org", "user+tag@example.org"},
		{`"john doe"@example.org`, `"john doe"@example.org`, `"john doe"@example.org`},
		{"a@[192.0.2.1]", "a@[192.0.2.1]", "a@[192.0.2.1]"},
		{"用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v", "用户@xn--fsqu00a.xn--4rr70v"},
		{"bob@example.org.", "bob@example.org", "bob@example.org"},
		{"", "", ""},
		{"@example.org", "", ""},
		{"alice@", "", ""},
		{"alice", "", ""},
		{".alice@example.org", "", ""},
		{"al..ice@example.org", "", ""},
		{"alice.@example.org", "", ""},
		{"al ice@example.org", "", ""},
		{"alice@exa mple.org", "", ""},
		{"alice@example..org", "", ""},
		{"alice@-", "-", ""}, // a lone hyphen label fails IDNA lookup rules
		{strings.Repeat("a", 65) + "@example.org", "", ""},
		{"a@" + strings.Repeat("b", 64) + ".org", "", ""},
		{`"unterminated@example.org`, "", ""},
		{"a@[192.0.2.1", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAddress(tt.in)
			if tt.want == "" || tt.want == "-" {
				if err == nil {
					t.Fatalf("ParseAddress(%q) = %v, want error", tt.in, got)
				}
				if !errors.Is(err, ErrBadAddress) {
					t.Fatalf("error %v does not wrap ErrBadAddress", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAddress(%q): %v", tt.in, err)
			}
			if got.String() != tt.want {
				t.Errorf("String() = %q, want %q", got.String(), tt.want)
			}
			if got.Key() != tt.wantKey {
				t.Errorf("Key() = %q, want %q", got.Key(), tt.wantKey)
			}
		})
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"a@b.c", `"x y"@z.org`, "用户@例子.广告", "a@[1.2.3.4]", "@", "a@b..c", "x@xn--zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		// A parsed address must survive a round trip and respect the RFC 5321 limits.
		b, err := ParseAddress(a.String())
		if err != nil {
			t.Fatalf("round trip of %q -> %q failed: %v", s, a.String(), err)
		}
		if b != a {
			t.Fatalf("round trip changed %q: %#v -> %#v", s, a, b)
		}
		if len(a.Domain) > MaxDomain || len(a.Local) > MaxLocalPart {
			t.Fatalf("limits exceeded: %#v", a)
		}
		if !strings.HasPrefix(a.Domain, "[") && !utf8.ValidString(a.Domain) {
			t.Fatalf("domain not valid: %q", a.Domain)
		}
	})
}
