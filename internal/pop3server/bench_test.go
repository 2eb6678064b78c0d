package pop3server

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

// BenchmarkCopyMessage measures RETR's dot-stuffing copy of a 10 MiB CRLF message with 78-octet lines.
func BenchmarkCopyMessage(b *testing.B) {
	line := strings.Repeat("x", 76) + "\r\n"
	msg := []byte("Subject: bench\r\n\r\n" + strings.Repeat(line, 10<<20/len(line)))
	bw := bufio.NewWriterSize(io.Discard, 32<<10)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := copyMessage(bw, bytes.NewReader(msg), -1); err != nil {
			b.Fatal(err)
		}
	}
}
