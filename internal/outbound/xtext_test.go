package outbound

import (
	"strings"
	"testing"
)

func TestDecodeXtext(t *testing.T) {
	for in, want := range map[string]string{"a+2Bb@x.test": "a+b@x.test", "plain@x": "plain@x", "+3D+3D": "=="} {
		if got, err := DecodeXtext(in); err != nil || got != want {
			t.Errorf("DecodeXtext(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"a+", "a+2", "a+ZZ"} {
		if _, err := DecodeXtext(bad); err == nil {
			t.Errorf("DecodeXtext(%q) succeeded", bad)
		}
	}
}

func FuzzDecodeXtext(f *testing.F) {
	for _, s := range []string{"a+2Bb@x.test", "+", "+4", "++41", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := DecodeXtext(s)
		if err == nil && len(got) > len(s) {
			t.Fatalf("decoded %q longer than input %q", got, s)
		}
		if err == nil && !strings.Contains(s, "+") && got != s {
			t.Fatalf("text without + changed: %q -> %q", s, got)
		}
	})
}

func FuzzHasExtension(f *testing.F) {
	f.Add("mx.test\nSTARTTLS\nSIZE 100")
	f.Add("")
	f.Add("\n\n")
	f.Fuzz(func(t *testing.T, ehlo string) {
		hasExtension(ehlo, "STARTTLS") // must not panic
	})
}
