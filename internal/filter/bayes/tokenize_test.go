package bayes

import (
	"slices"
	"strings"
	"testing"
)

func TestTokenize(t *testing.T) {
	msg := "From: \"Shop\" <deals@Example.COM>\r\nSubject: =?utf-8?q?Gro=C3=9Fe_Rabatte?= FREE!!\r\n" +
		"Message-ID: <1@mx.example.com>\r\nX-Mailer: BulkMail 3.1 pro\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html; charset=iso-8859-1\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n\r\n<html><b>Cheap</b> <a href=3D\"http://www.Bad.example.net/x\">pills</a>" +
		" caf=E9 <script>var hidden=1;</script><!-- comment --></html>\r\n--b\r\nContent-Type: application/octet-stream\r\n" +
		"Content-Disposition: attachment; filename=\"run.EXE\"\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		"見積もりのご案内 http://1.2.3.4/login aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ok\r\n--b--\r\n"
	got := Tokenize([]byte(msg))
	for _, want := range []string{"subject:große", "subject:rabatte", "subject:free!!", "from:deals@example.com",
		"fromdom:example.com", "fromname:shop", "mid:mx.example.com", "mailer:bulkmail 3.1", "ctype:multipart/mixed",
		"ctype:text/html", "charset:iso-8859-1", "cte:quoted-printable:text/html", "html:script", "html:a", "cheap",
		"pills", "café", "url:www.bad.example.net", "url:example.net", "ext:.exe", "見積", "積も", "url:1.2.3.4",
		"long:a:3"} {
		if !slices.Contains(got, want) {
			t.Errorf("token %q missing from %q", want, got)
		}
	}
	for _, bad := range []string{"hidden", "comment", "tvqqaaamaaaaeaaaa", "ok"} {
		if slices.Contains(got, bad) {
			t.Errorf("token %q should not be there", bad)
		}
	}
}

func TestTokenizeLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("Subject: x\r\n\r\n")
	for i := range 20000 {
		b.WriteString("w")
		b.WriteString(strings.Repeat("x", i%15))
		b.WriteString(string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676%26)) + " ")
	}
	if n := len(Tokenize([]byte(b.String()))); n != maxTokens {
		t.Fatalf("%d tokens, want the cap %d", n, maxTokens)
	}
}

func FuzzTokenize(f *testing.F) {
	f.Add([]byte("Subject: hi\r\n\r\nhello world\r\n"))
	f.Add([]byte("Content-Type: text/html\r\n\r\n<a href='http://x@y.example/'>z</a><!--"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n\r\nSubject: =?gb2312?b?xOO6ww==?=\r\n\r\n中文内容\r\n--x--"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		toks := Tokenize(msg)
		if len(toks) > maxTokens {
			t.Fatalf("%d tokens", len(toks))
		}
		seen := map[string]bool{}
		for _, tok := range toks {
			if seen[tok] {
				t.Fatalf("duplicate token %q", tok)
			}
			seen[tok] = true
			if tok == "" {
				t.Fatal("empty token")
			}
		}
	})
}

// adversarial are 512 KiB inputs that would make a careless scanner quadratic: links without delimiters,
// unclosed scripts, tags without end.
func adversarial() map[string][]byte {
	html := "Content-Type: text/html\r\n\r\n"
	return map[string][]byte{
		"links":   []byte("Subject: x\r\n\r\n" + strings.Repeat("http://a", 64<<10)),
		"scripts": []byte(html + strings.Repeat("<script>x", 56<<10)),
		"closes":  []byte(html + strings.Repeat("</script><style>", 32<<10)),
		"tags":    []byte(html + strings.Repeat("<a href=http://x", 32<<10)),
	}
}

// TestTokenizeAdversarial runs the inputs once; a quadratic scan shows as a test that does not finish.
func TestTokenizeAdversarial(t *testing.T) {
	for name, msg := range adversarial() {
		if toks := Tokenize(msg); len(toks) == 0 {
			t.Errorf("%s: no tokens", name)
		}
	}
}

func BenchmarkTokenizeAdversarial(b *testing.B) {
	for name, msg := range adversarial() {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				Tokenize(msg)
			}
		})
	}
}
