package htmltext

import (
	"strings"
	"testing"
)

// walk renders what Walk reports: text as is, tags as [name attr=val] or [/name].
func walk(s string) string {
	var b strings.Builder
	Walk(s, Handler{
		Text: func(t []byte) { b.Write(t) },
		Tag: func(t *Tag) {
			b.WriteByte('[')
			if t.End {
				b.WriteByte('/')
			}
			b.WriteString(t.Name)
			for _, a := range t.Attrs {
				b.WriteString(" " + a.Key + "=" + a.Val)
			}
			b.WriteByte(']')
		},
	})
	return b.String()
}

func TestWalk(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"plain &amp; simple", "plain & simple"},
		{`<A HREF="http://x.example/?a=1&amp;b=2">Click</a>`, "[a href=http://x.example/?a=1&b=2]Click[/a]"},
		{"<p>one<br/>two</p>", "[p]one[br]two[/p]"},
		{"a<!-- hidden <b>x</b> -->b", "ab"},
		{"a<script>var s = '<b>not text</b>';</script>b", "a[script][/script]b"},
		{"a<STYLE>p { color: red }</STYLE>b", "a[style][/style]b"},
		{"a<script>never closed <p>x", "a[script]"},
		{"<noscript><img src=http://t.example/p.gif>seen</noscript>", "[noscript][img src=http://t.example/p.gif]seen[/noscript]"},
		{"x < y and y > z", "x < y and y > z"},
		{"<a href=http://x.example/ unclosed", ""},
		{"<!DOCTYPE html><title>T</title>", "[title]T[/title]"},
		{"<img src='a' SRC='b' alt=x>", "[img src=a alt=x]"}, // a repeated attribute is dropped (HTML 13.2.5.33)
	} {
		if got := walk(tc.in); got != tc.want {
			t.Errorf("Walk(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAttr(t *testing.T) {
	t.Parallel()
	tag := Tag{Name: "a"}
	Walk(`<a title="t" href="h">`, Handler{Tag: func(x *Tag) { tag = Tag{Name: x.Name, Attrs: append(x.Attrs[:0:0], x.Attrs...)} }})
	if tag.Attr("href") != "h" || tag.Attr("title") != "t" || tag.Attr("src") != "" {
		t.Errorf("attrs %+v", tag.Attrs)
	}
}

// TestHostile runs inputs that would make a careless scanner quadratic; one that is shows as a test that does not
// finish.
func TestHostile(t *testing.T) {
	t.Parallel()
	for name, s := range map[string]string{
		"scripts":   strings.Repeat("<script>x", 64<<10),
		"closes":    strings.Repeat("</script><style>", 32<<10),
		"attrs":     "<a " + strings.Repeat("href=http://x ", 32<<10) + ">",
		"distinct":  "<a " + strings.Repeat("h=1 hr=2 hre=3 x", 32<<10) + ">",
		"tags":      strings.Repeat("<a href=http://x", 32<<10),
		"comments":  strings.Repeat("<!--", 128<<10),
		"noscripts": strings.Repeat("<noscript>", 64<<10),
	} {
		n := 0
		Walk(s, Handler{Text: func(b []byte) { n += len(b) }, Tag: func(*Tag) { n++ }})
		t.Logf("%s: %d text bytes and tags", name, n)
	}
}

func FuzzWalk(f *testing.F) {
	f.Add("<a href='http://u@h'>www.x.y</a><img><script>x</script><!--")
	f.Add("<noscript><p>a</p></noscript><style>b")
	f.Fuzz(func(t *testing.T, s string) {
		Walk(s, Handler{
			Text: func(b []byte) {
				if len(b) > len(s)*3+8 { // entities expand at most a few bytes each
					t.Fatalf("text of %d bytes from %d of input", len(b), len(s))
				}
			},
			Tag: func(tag *Tag) {
				if strings.ContainsAny(tag.Name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
					t.Errorf("tag name %q not lower case", tag.Name)
				}
			},
		})
	})
}
