package imapserver

import (
	"bufio"
	"bytes"
	"compress/flate"
	"io"
	"math/rand/v2"
	"testing"
)

func TestInflateRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, level := range []int{flate.NoCompression, flate.BestSpeed, flate.DefaultCompression, flate.HuffmanOnly} {
		var want, comp bytes.Buffer
		w, _ := flate.NewWriter(&comp, level)
		for i := 0; i < 200; i++ {
			chunk := make([]byte, r.IntN(3000))
			for j := range chunk {
				chunk[j] = "abcdefgh \r\n"[r.IntN(11)]
				if r.IntN(50) == 0 {
					chunk[j] = byte(r.IntN(256))
				}
			}
			want.Write(chunk)
			w.Write(chunk)
			if i%7 == 0 {
				w.Flush()
			}
		}
		w.Close()
		got, err := io.ReadAll(newInflateReader(bufio.NewReader(&comp)))
		if err != nil || !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("level %d: err %v, got %d bytes want %d", level, err, len(got), want.Len())
		}
	}
}

// TestInflatePartialFlush: zlib's Z_PARTIAL_FLUSH output of "3 NAMESPACE\r\n" (as isync sends it) is delivered
// without more input.
func TestInflatePartialFlush(t *testing.T) {
	data := []byte{50, 86, 240, 115, 244, 117, 13, 14, 112, 116, 118, 229, 229, 2, 8}
	pr, pw := io.Pipe()
	go pw.Write(data) // and never more: a blocking decoder would hang here
	r := newInflateReader(bufio.NewReader(pr))
	buf := make([]byte, 100)
	n, err := io.ReadAtLeast(r, buf, len("3 NAMESPACE\r\n"))
	if err != nil || string(buf[:n]) != "3 NAMESPACE\r\n" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
	pw.Close()
}

func FuzzInflate(f *testing.F) {
	var comp bytes.Buffer
	w, _ := flate.NewWriter(&comp, flate.DefaultCompression)
	w.Write([]byte("a1 NOOP\r\na2 LOGIN user pass\r\n"))
	w.Close()
	f.Add(comp.Bytes())
	f.Add([]byte{50, 86, 240, 115, 244, 117, 13, 14, 112, 116, 118, 229, 229, 2, 8})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := io.ReadAll(newInflateReader(bufio.NewReader(bytes.NewReader(data))))
		want, werr := io.ReadAll(flate.NewReader(bytes.NewReader(data)))
		if err == nil && werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("mismatch: %q vs %q", got, want)
		}
	})
}
