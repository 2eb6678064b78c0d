package attachments

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"github.com/postern/postern/internal/filter"
)

func zipOf(t testing.TB, encrypted bool, names ...string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		fh := &zip.FileHeader{Name: n, Method: zip.Store}
		if encrypted {
			fh.Flags |= 0x1
		}
		w, err := zw.CreateHeader(fh)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "content of "+n)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// mixed builds a multipart/mixed message with a text part and one attachment with the given part header.
func mixed(partHeader, body string) string {
	return "From: a@example.org\r\nTo: b@example.net\r\nSubject: files\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"BOUND\"\r\n\r\npreamble\r\n" +
		"--BOUND\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n" +
		"--BOUND\r\n" + partHeader + "\r\n\r\n" + body + "\r\n--BOUND--\r\n"
}

// inner gives a message built by mixed its own boundary, to be nested in another.
func inner(m string) string { return strings.ReplaceAll(m, "BOUND", "INNER") }

func TestScan(t *testing.T) {
	t.Parallel()
	exe := base64.StdEncoding.EncodeToString([]byte("MZ\x90\x00fake"))
	for _, tc := range []struct {
		name, msg string
		opts      Options
		want      string // Finding.Reason, "" for clean
	}{
		{"plain text", "Subject: hi\r\n\r\nhello\r\n", Options{}, ""},
		{"pdf", mixed("Content-Type: application/pdf; name=\"invoice.pdf\"\r\nContent-Disposition: attachment; filename=\"invoice.pdf\"\r\nContent-Transfer-Encoding: base64", exe), Options{}, ""},
		{"exe by filename", mixed("Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"setup.EXE\"\r\nContent-Transfer-Encoding: base64", exe), Options{}, "extension exe"},
		{"double extension, trailing dot", mixed("Content-Type: application/octet-stream; name=\"invoice.pdf.scr. \"\r\nContent-Transfer-Encoding: base64", exe), Options{}, "extension scr"},
		{"RFC 2231 filename", mixed("Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=utf-8''R%C3%A9sum%C3%A9.js\r\nContent-Transfer-Encoding: base64", exe), Options{}, "extension js"},
		{"RFC 2231 continuation", mixed("Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*0=\"run.\"; filename*1=\"com\"", "x"), Options{}, "extension com"},
		{"RFC 2047 name", mixed("Content-Type: application/octet-stream; name=\"=?utf-8?B?cnVuLmJhdA==?=\"\r\nContent-Transfer-Encoding: base64", exe), Options{}, "extension bat"},
		{"content type only", mixed("Content-Type: application/x-msdownload\r\nContent-Transfer-Encoding: base64", exe), Options{}, "content type application/x-msdownload"},
		{"exe in zip", mixed("Content-Type: application/zip; name=\"docs.zip\"\r\nContent-Transfer-Encoding: base64", zipOf(t, false, "readme.txt", "docs/payload.exe")), Options{}, "archive member with extension exe"},
		{"exe in zip, archives skipped", mixed("Content-Type: application/zip; name=\"docs.zip\"\r\nContent-Transfer-Encoding: base64", zipOf(t, false, "payload.exe")), Options{SkipArchives: true}, ""},
		{"clean zip", mixed("Content-Type: application/octet-stream; name=\"docs.ZIP\"\r\nContent-Transfer-Encoding: base64", zipOf(t, false, "a.txt", "b.pdf")), Options{}, ""},
		{"encrypted zip allowed", mixed("Content-Type: application/zip; name=\"x.zip\"\r\nContent-Transfer-Encoding: base64", zipOf(t, true, "a.txt")), Options{}, ""},
		{"encrypted zip refused", mixed("Content-Type: application/zip; name=\"x.zip\"\r\nContent-Transfer-Encoding: base64", zipOf(t, true, "a.txt")), Options{RejectEncryptedArchives: true}, "encrypted archive"},
		{"forwarded message", mixed("Content-Type: message/rfc822", inner(mixed("Content-Type: application/octet-stream; name=\"a.vbs\"", "x"))), Options{}, "extension vbs"},
		{"custom list", mixed("Content-Type: application/octet-stream; name=\"a.exe\"", "x"), Options{Extensions: []string{".docm"}, ContentTypes: []string{}}, ""},
		{"custom list hit", mixed("Content-Type: application/octet-stream; name=\"a.DOCM\"", "x"), Options{Extensions: []string{".docm"}}, "extension docm"},
		{"unknown charset", mixed("Content-Type: text/plain; charset=x-nonsense; name=\"a.cmd\"", "x"), Options{}, "extension cmd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			f, err := c.Scan(strings.NewReader(tc.msg))
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			got := ""
			if f != nil {
				got = f.Reason
			}
			if got != tc.want {
				t.Errorf("finding %+v, want reason %q", f, tc.want)
			}
		})
	}
}

func TestData(t *testing.T) {
	t.Parallel()
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	msg := func(s string) *filter.Message {
		return &filter.Message{Size: int64(len(s)), Open: func() (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader(s)), nil
		}}
	}
	v := c.Data(context.Background(), &filter.Txn{}, msg(mixed("Content-Type: application/octet-stream; name=\"Bad\r\n name.exe\"", "x")))
	if v.Action != filter.Reject || v.Code != 554 || v.Enhanced != "5.7.1" || !strings.Contains(v.Message, ".exe)") {
		t.Errorf("verdict %+v", v)
	}
	if strings.ContainsAny(v.Message, "\r\n") {
		t.Errorf("reply text with a line break: %q", v.Message)
	}
	if v := c.Data(context.Background(), &filter.Txn{}, msg("not a header at all\x00\r\n")); v.Action != filter.Accept {
		t.Errorf("unparseable message: %+v", v)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{{Extensions: []string{"a.b"}}, {Extensions: []string{""}}, {ContentTypes: []string{"exe"}}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v): no error", o)
		}
	}
}

func FuzzScan(f *testing.F) {
	f.Add([]byte(mixed("Content-Type: application/octet-stream; name=\"a.exe\"", "x")))
	f.Add([]byte(mixed("Content-Type: message/rfc822", inner(mixed("Content-Type: application/zip; name=\"a.zip\"\r\nContent-Transfer-Encoding: base64", zipOf(f, false, "x.exe"))))))
	c, err := New(Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fd, _ := c.Scan(bytes.NewReader(b))
		if fd != nil && fd.Reason == "" {
			t.Errorf("finding without a reason: %+v", fd)
		}
	})
}
