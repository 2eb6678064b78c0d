package msginfo

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// nestedMsg has every kind of part RFC 9051 6.4.5 numbers: a multipart with preamble and epilogue, a
// message/rfc822 whose body is multipart, one whose body is not, and a nested multipart.
const nestedMsg = `From: a@x.test
Subject: top
Content-Type: multipart/mixed; boundary="outer"

preamble
--outer
Content-Type: text/plain

part one
--outer
Content-Type: message/rfc822
Content-Description: forwarded

Subject: inner
To: b@x.test
Content-Type: multipart/alternative; boundary=inner

--inner

inner plain
--inner
Content-Type: text/html

<b>inner html</b>
--inner--
--outer
Content-Type: message/rfc822

Subject: simple

simple body
--outer
Content-Type: multipart/related; boundary=rel

--rel
Content-Type: text/plain

rel one
--rel--

--outer--
epilogue
`

func TestSectionBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path   []int
		spec   string
		fields []string
		want   string // "ERR" for ErrNoSuchPart
	}{
		{nil, "HEADER", nil, "From: a@x.test\nSubject: top\nContent-Type: multipart/mixed; boundary=\"outer\"\n\n"},
		{nil, "TEXT", nil, nestedMsg[strings.Index(nestedMsg, "\n\n")+2:]},
		{nil, "HEADER.FIELDS", []string{"SUBJECT", "x-none"}, "Subject: top\n\n"},
		{nil, "HEADER.FIELDS.NOT", []string{"Subject", "content-type"}, "From: a@x.test\n\n"},
		{nil, "MIME", nil, "ERR"},
		{[]int{1}, "", nil, "part one"},
		{[]int{1}, "MIME", nil, "Content-Type: text/plain\n\n"},
		{[]int{1}, "HEADER", nil, "ERR"},
		{[]int{1}, "TEXT", nil, "ERR"},
		{[]int{2}, "MIME", nil, "Content-Type: message/rfc822\nContent-Description: forwarded\n\n"},
		{[]int{2}, "", nil, "Subject: inner\nTo: b@x.test\nContent-Type: multipart/alternative; boundary=inner\n\n" +
			"--inner\n\ninner plain\n--inner\nContent-Type: text/html\n\n<b>inner html</b>\n--inner--"},
		{[]int{2}, "HEADER", nil, "Subject: inner\nTo: b@x.test\nContent-Type: multipart/alternative; boundary=inner\n\n"},
		{[]int{2}, "HEADER.FIELDS", []string{"To"}, "To: b@x.test\n\n"},
		{[]int{2}, "TEXT", nil, "--inner\n\ninner plain\n--inner\nContent-Type: text/html\n\n<b>inner html</b>\n--inner--"},
		{[]int{2, 1}, "", nil, "inner plain"},
		{[]int{2, 1}, "MIME", nil, "\n"},
		{[]int{2, 2}, "", nil, "<b>inner html</b>"},
		{[]int{2, 2}, "MIME", nil, "Content-Type: text/html\n\n"},
		{[]int{2, 3}, "", nil, "ERR"},
		{[]int{3}, "HEADER", nil, "Subject: simple\n\n"},
		{[]int{3}, "TEXT", nil, "simple body"},
		{[]int{3, 1}, "", nil, "simple body"},
		{[]int{3, 1}, "MIME", nil, "Subject: simple\n\n"},
		{[]int{3, 2}, "", nil, "ERR"},
		{[]int{4}, "", nil, "--rel\nContent-Type: text/plain\n\nrel one\n--rel--\n"},
		{[]int{4, 1}, "", nil, "rel one"},
		{[]int{4, 1, 1}, "", nil, "ERR"},
		{[]int{5}, "", nil, "ERR"},
		{[]int{0}, "", nil, "ERR"},
	}
	for _, nl := range []string{"\n", "\r\n"} {
		msg := []byte(strings.ReplaceAll(nestedMsg, "\n", nl))
		i := mustParse(t, string(msg))
		checkInfo(t, msg, i)
		for _, tc := range tests {
			got, err := i.SectionBytes(msg, Section{Path: tc.path, Specifier: tc.spec, Fields: tc.fields})
			want := strings.ReplaceAll(tc.want, "\n", nl)
			switch {
			case tc.want == "ERR":
				if !errors.Is(err, ErrNoSuchPart) {
					t.Errorf("%v.%s: got %q, %v; want ErrNoSuchPart", tc.path, tc.spec, got, err)
				}
			case err != nil || string(got) != want:
				t.Errorf("%q %v.%s:\n got %q, %v\nwant %q", nl, tc.path, tc.spec, got, err, want)
			}
		}
		if whole, _ := i.SectionBytes(msg, Section{}); string(whole) != string(msg) {
			t.Errorf("BODY[] is not the whole message")
		}
		if _, err := i.SectionBytes(msg, Section{Specifier: "BOGUS"}); !errors.Is(err, ErrBadSpecifier) {
			t.Errorf("bad specifier: %v", err)
		}
	}
}

// TestSectionSinglePart: a message that is not multipart has only part 1, its body (RFC 9051 6.4.5).
func TestSectionSinglePart(t *testing.T) {
	t.Parallel()
	msg := []byte("Subject: s\r\nX-Folded: a\r\n b\r\n\r\nline1\r\nline2\r\n")
	i := mustParse(t, string(msg))
	checkInfo(t, msg, i)
	for _, tc := range []struct {
		sec  Section
		want string
	}{
		{Section{Path: []int{1}}, "line1\r\nline2\r\n"},
		{Section{Specifier: "text"}, "line1\r\nline2\r\n"},
		{Section{Path: []int{1}, Specifier: "MIME"}, "Subject: s\r\nX-Folded: a\r\n b\r\n\r\n"},
		{Section{Specifier: "HEADER.FIELDS", Fields: []string{"x-folded"}}, "X-Folded: a\r\n b\r\n\r\n"},
		{Section{Specifier: "HEADER.FIELDS", Fields: []string{"nothing"}}, "\r\n"},
	} {
		got, err := i.SectionBytes(msg, tc.sec)
		if err != nil || string(got) != tc.want {
			t.Errorf("%+v: got %q, %v; want %q", tc.sec, got, err, tc.want)
		}
	}
	if _, err := i.SectionBytes(msg, Section{Path: []int{2}}); !errors.Is(err, ErrNoSuchPart) {
		t.Errorf("part 2: %v", err)
	}

	// Header only, no empty line, no body.
	msg = []byte("Subject: s\r\nFrom: f@x")
	i = mustParse(t, string(msg))
	checkInfo(t, msg, i)
	if got, _ := i.SectionBytes(msg, Section{Specifier: "HEADER"}); string(got) != string(msg) {
		t.Errorf("HEADER = %q", got)
	}
	if got, _ := i.SectionBytes(msg, Section{Specifier: "TEXT"}); len(got) != 0 {
		t.Errorf("TEXT = %q", got)
	}
}

func TestBinaryBytes(t *testing.T) {
	t.Parallel()
	parts := []struct{ cte, body, want string }{
		{"base64", "aGVsbG8g\r\nd29y bGQ=\r\n", "hello world"},
		{"BASE64", "aGVs!!bG8\r\n", "hello"},   // garbage skipped, missing padding
		{"base64", "aGk=\r\naGk=\r\n", "hihi"}, // concatenated blocks
		{"quoted-printable", "caf=C3=A9 =3D x  \r\nsoft=\r\nbreak=\r\n=ZZ end", "caf\xc3\xa9 = x\r\nsoftbreak=ZZ end"},
		{"Quoted-Printable", "a=\r\n", "a"},
		{"7bit", "plain\r\ntext", "plain\r\ntext"},
		{"8bit", "caf\xc3\xa9", "caf\xc3\xa9"},
		{"binary", "\x00\x01\xff", "\x00\x01\xff"},
		{"", "none", "none"},
		{"x-uuencode", "begin 644 x", "ERR"},
	}
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for _, p := range parts {
		b.WriteString("--b\r\nContent-Type: application/octet-stream\r\n")
		if p.cte != "" {
			b.WriteString("Content-Transfer-Encoding: " + p.cte + "\r\n")
		}
		b.WriteString("\r\n" + p.body + "\r\n")
	}
	b.WriteString("--b--\r\n")
	msg := []byte(b.String())
	i := mustParse(t, string(msg))
	checkInfo(t, msg, i)
	for k, p := range parts {
		got, err := i.BinaryBytes(msg, []int{k + 1})
		if p.want == "ERR" {
			if !errors.Is(err, ErrUnknownCTE) {
				t.Errorf("%s: got %q, %v; want ErrUnknownCTE", p.cte, got, err)
			}
			continue
		}
		if err != nil || string(got) != p.want {
			t.Errorf("%s %q: got %q, %v; want %q", p.cte, p.body, got, err, p.want)
		}
	}
	if _, err := i.BinaryBytes(msg, []int{len(parts) + 1}); !errors.Is(err, ErrNoSuchPart) {
		t.Errorf("missing part: %v", err)
	}
	if got, _ := i.BinaryBytes(msg, nil); string(got) != string(msg) {
		t.Errorf("BINARY[] is not the whole message")
	}
}

// TestParseReaders: the result does not depend on how the reader delivers the bytes, lines longer than
// the read buffer included; a failing reader is the only error.
func TestParseReaders(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 150<<10)
	msg := "Subject: " + long + "\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" +
		"Content-Type: text/plain\r\n\r\n" + long + "\r\n-" + long + "\r\n--b\r\nX-Long: " + long +
		"\r\n\r\n--b--" + long + "\r\n"
	want := mustParse(t, msg)
	checkInfo(t, []byte(msg), want)
	if n := len(want.Root.Children); n != 2 || want.Root.Children[0].Lines != 1 {
		t.Fatalf("%d parts", n)
	}
	if got := len(want.Envelope.Subject); got != len(long) {
		t.Errorf("subject of %d bytes", got)
	}
	for name, r := range map[string]io.Reader{
		"one byte": iotest.OneByteReader(strings.NewReader(msg)),
		"half":     iotest.HalfReader(strings.NewReader(msg)),
		"no Len":   io.MultiReader(strings.NewReader(msg)),
	} {
		got, err := Parse(r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got.Marshal(), want.Marshal()) {
			t.Errorf("%s reader gives another result", name)
		}
	}
	boom := errors.New("boom")
	if _, err := Parse(io.MultiReader(strings.NewReader(msg[:1000]), iotest.ErrReader(boom))); !errors.Is(err, boom) {
		t.Errorf("reader error: %v", err)
	}
}
