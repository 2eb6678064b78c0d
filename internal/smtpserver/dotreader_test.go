package smtpserver

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestDotReaderLongLines: lines longer than the buffer pass through in pieces with the same result as short ones;
// a CR split from its LF by a piece boundary is fine, a bare CR or LF anywhere is not.
func TestDotReaderLongLines(t *testing.T) {
	long := strings.Repeat("0123456789", 10)
	for _, tt := range []struct {
		name, in, want string
		err            error
		max            int64
	}{
		{"short", "a\r\n..b\r\n.\r\n", "a\r\n.b\r\n", nil, 1 << 20},
		{"long", long + "\r\n.\r\n", long + "\r\n", nil, 1 << 20},
		{"long stuffed", "." + long + "\r\nx\r\n.\r\n", long + "\r\nx\r\n", nil, 1 << 20},
		{"dot inside long line", long[:15] + "." + long + "\r\n.\r\n", long[:15] + "." + long + "\r\n", nil, 1 << 20},
		{"CR at piece end", long[:15] + "\r\n" + long + "\r\n.\r\n", long[:15] + "\r\n" + long + "\r\n", nil, 1 << 20},
		{"bare CR in long line", long[:40] + "\r" + long + "\r\n.\r\n", "", errBareLF, 1 << 20},
		{"bare CR at piece end", long[:15] + "\rX" + long + "\r\n.\r\n", "", errBareLF, 1 << 20},
		{"bare LF after long", long + "\n.\r\n", "", errBareLF, 1 << 20},
		{"too big", long + "\r\n" + long + "\r\n.\r\n", "", errTooBig, 150},
		{"unterminated", long, "", io.ErrUnexpectedEOF, 1 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := &dotReader{br: bufio.NewReaderSize(strings.NewReader(tt.in), 16), max: tt.max}
			got, err := io.ReadAll(d)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestDotReaderDrainsLongLine: after a failure the rest of a huge line is consumed in pieces, so the session
// stays in step, and the next command is read.
func TestDotReaderDrainsLongLine(t *testing.T) {
	in := strings.Repeat("x", 1<<20) + "\r\n.\r\nQUIT\r\n"
	br := bufio.NewReaderSize(strings.NewReader(in), 4096)
	d := &dotReader{br: br, max: 100}
	if !d.drain() || d.err != errTooBig {
		t.Fatalf("drain: %v", d.err)
	}
	if l, _ := br.ReadString('\n'); l != "QUIT\r\n" {
		t.Fatalf("next line %q", l)
	}
}
