package msginfo

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// multipartMessage builds a message of about size bytes: text, html and base64 attachments of lines of
// 76 characters, as mail clients write them.
func multipartMessage(size int, attachment int) []byte {
	var b bytes.Buffer
	b.WriteString("From: Alice <alice@example.com>\r\nTo: Bob <bob@example.com>\r\nSubject: benchmark\r\n" +
		"Date: Mon, 2 Jan 2006 15:04:05 -0700\r\nMessage-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"==outer==\"\r\n\r\n--==outer==\r\n" +
		"Content-Type: multipart/alternative; boundary=\"==alt==\"\r\n\r\n--==alt==\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	line := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 2)[:74] + "=\r\n"
	text := (size - attachment) / 2
	for b.Len() < text {
		b.WriteString(line)
	}
	b.WriteString("\r\n--==alt==\r\nContent-Type: text/html; charset=utf-8\r\n\r\n")
	for b.Len() < 2*text {
		b.WriteString("<p>" + line[:70] + "</p>\r\n")
	}
	b.WriteString("\r\n--==alt==--\r\n")
	for n := 0; b.Len() < size; n++ {
		fmt.Fprintf(&b, "--==outer==\r\nContent-Type: application/octet-stream; name=\"f%d.bin\"\r\n"+
			"Content-Disposition: attachment; filename=\"f%d.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", n, n)
		b64 := strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx", 2)[:76] + "\r\n"
		end := b.Len() + max(attachment, 4096)
		for b.Len() < end && b.Len() < size {
			b.WriteString(b64)
		}
	}
	b.WriteString("--==outer==--\r\n")
	return b.Bytes()
}

func benchmarkParse(b *testing.B, msg []byte) {
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse100KMultipart: a 100 KiB multipart/mixed with alternative text and small attachments.
func BenchmarkParse100KMultipart(b *testing.B) { benchmarkParse(b, multipartMessage(100<<10, 8<<10)) }

// BenchmarkParse10MAttachment: a 10 MiB message that is mostly one base64 attachment.
func BenchmarkParse10MAttachment(b *testing.B) { benchmarkParse(b, multipartMessage(10<<20, 10<<20)) }

func BenchmarkMarshal(b *testing.B) {
	i, _ := Parse(bytes.NewReader(multipartMessage(100<<10, 8<<10)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(i.Marshal()); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBenchMessagesAreValid(t *testing.T) {
	t.Parallel()
	for _, size := range []int{100 << 10, 1 << 20} {
		msg := multipartMessage(size, 8<<10)
		i := mustParse(t, string(msg))
		checkInfo(t, msg, i)
		if len(i.Root.Children) < 2 {
			t.Errorf("%d: %d parts", size, len(i.Root.Children))
		}
	}
}
