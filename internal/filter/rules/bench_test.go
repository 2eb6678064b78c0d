package rules

import (
	"context"
	"strings"
	"testing"
	"time"
)

// BenchmarkScore scores a typical 8 KiB HTML newsletter and a 512 KiB text message (the read limit).
func BenchmarkScore(b *testing.B) {
	c, _ := New(Options{Now: func() time.Time { return now }})
	para := "Our quarterly report is attached; see https://www.example.com/report for details and the agenda.\r\n"
	for _, bc := range []struct {
		name string
		msg  string
	}{
		{"html-8KiB", okHeader + "Content-Type: text/html\r\n\r\n<html><body>" +
			strings.Repeat(`<p>`+para+`<a href="https://www.example.com/x">www.example.com</a></p>`, 8192/200) + "</body></html>\r\n"},
		{"text-512KiB", okHeader + "\r\n" + strings.Repeat(para, 512<<10/len(para))},
	} {
		m := msgOf([]byte(bc.msg))
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.msg)))
			for b.Loop() {
				if _, err := c.Score(context.Background(), nil, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// adversarial are 512 KiB inputs that would make a careless scanner quadratic.
func adversarial() map[string]string {
	html := okHeader + "Content-Type: text/html\r\n\r\n"
	return map[string]string{
		"links":   okHeader + "\r\n" + strings.Repeat("http://a", 64<<10),
		"scripts": html + strings.Repeat("<script>x", 56<<10),
		"closes":  html + strings.Repeat("</script><style>", 32<<10),
		"anchors": html + strings.Repeat(`<a href="http://x/">www.y.example</a>`, 14<<10),
	}
}

// TestAdversarial runs the inputs once; a quadratic scan shows as a test that does not finish.
func TestAdversarial(t *testing.T) {
	c, _ := New(Options{})
	for name, msg := range adversarial() {
		if _, err := c.Score(context.Background(), nil, msgOf([]byte(msg))); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func BenchmarkScoreAdversarial(b *testing.B) {
	c, _ := New(Options{})
	for name, msg := range adversarial() {
		m := msgOf([]byte(msg))
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				c.Score(context.Background(), nil, m)
			}
		})
	}
}
