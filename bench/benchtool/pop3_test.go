package main

import (
	"bufio"
	"strings"
	"testing"
)

func TestMultiline(t *testing.T) {
	long := strings.Repeat("x", 100) // longer than the reader's buffer below
	for _, tc := range []struct {
		name, in string
		want     int64
		rest     string
	}{
		{"simple", "a\r\nb\r\n.\r\nNEXT", 6, "NEXT"},
		{"empty", ".\r\nNEXT", 0, "NEXT"},
		{"stuffed dot", "..x\r\n.\r\n", 5, ""},
		{"bare LF end", "a\n.\n", 2, ""},
		// A long line whose tail after a buffer boundary is ".\r\n" is data, not the end.
		{"long line", long[:16] + ".\r\n.\r\n", 19, ""},
		{"very long", long + "\r\n.\r\n", 102, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &popConn{r: bufio.NewReaderSize(strings.NewReader(tc.in), 16)}
			n, err := p.multiline()
			if err != nil || n != tc.want {
				t.Fatalf("multiline = %d, %v; want %d", n, err, tc.want)
			}
			rest, _ := p.r.ReadString(0)
			if rest != tc.rest {
				t.Errorf("left %q, want %q", rest, tc.rest)
			}
		})
	}
}

func TestMultilineTruncated(t *testing.T) {
	p := &popConn{r: bufio.NewReaderSize(strings.NewReader("a\r\nb"), 16)}
	if _, err := p.multiline(); err == nil {
		t.Fatal("a response without its final line must be an error")
	}
}

// FuzzMultiline: any input ends in a count or an error, never a panic or a hang, and never more bytes than given.
func FuzzMultiline(f *testing.F) {
	f.Add([]byte("a\r\n.\r\n"))
	f.Add([]byte(".\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		p := &popConn{r: bufio.NewReaderSize(strings.NewReader(string(in)), 16)}
		n, _ := p.multiline()
		if n < 0 || n > int64(len(in)) {
			t.Fatalf("counted %d of %d bytes", n, len(in))
		}
	})
}
