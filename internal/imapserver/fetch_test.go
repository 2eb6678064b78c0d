package imapserver

import (
	"fmt"
	"strings"
	"testing"

	"github.com/postern/postern/internal/store"
)

const multipartMsg = "From: \"Bob B.\" <bob@example.org>\r\nTo: alice@example.org, carol@example.org\r\n" +
	"Subject: =?UTF-8?Q?caf=C3=A9?= report\r\nDate: Sat, 02 Mar 2024 09:30:00 +0100\r\nMessage-ID: <m1@example.org>\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n" +
	"preamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
	"caf=C3=A9 au lait\r\n--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n" +
	"Content-Disposition: attachment; filename=\"a.bin\"\r\n\r\nAAECAw==\r\n--XX--\r\n"

func TestFetchStructure(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver("INBOX", multipartMsg)
	tc := e.login()
	tc.cmd("a1 EXAMINE INBOX").ok().code(`READ-ONLY`)
	tc.cmd("a2 FETCH 1 ENVELOPE").ok().has(`1 FETCH \(ENVELOPE \("Sat, 02 Mar 2024 09:30:00 \+0100" "=\?UTF-8\?Q\?caf=C3=A9\?= report" \(\("Bob B\." NIL "bob" "example.org"\)\) .*\("alice" NIL "alice" "example.org"|\(NIL NIL "alice" "example.org"\)`)
	tc.cmd("a3 FETCH 1 BODYSTRUCTURE").ok().has(`1 FETCH \(BODYSTRUCTURE \(\("text" "plain" \("charset" "utf-8"\) NIL NIL "quoted-printable" \d+ \d+ .*\)\("application" "octet-stream" NIL NIL NIL "base64" 8 .*"mixed" \("boundary" "XX"\)`)
	tc.cmd("a4 FETCH 1 BODY").ok().has(`1 FETCH \(BODY \(\("text" "plain"`)
	tc.cmd("a5 FETCH 1 (BODY[1] BODY[2.MIME] BODY[1]<0.4>)").ok().
		has(`(?s)1 FETCH \(BODY\[1\] \{\d+\}\r\ncaf=C3=A9 au lait BODY\[2.MIME\] \{\d+\}\r\nContent-Type: application/octet-stream.* BODY\[1\]<0> \{4\}\r\ncaf=\)`)
	tc.cmd("a6 FETCH 1 (BINARY[2] BINARY.SIZE[2] BINARY[1])").ok().has(`(?s)1 FETCH \(BINARY\[2\] ~\{4\}\r\n\x00\x01\x02\x03 BINARY.SIZE\[2\] 4 BINARY\[1\] \{\d+\}\r\ncafé au lait\)`)
	tc.cmd("a7 FETCH 1 (RFC822.HEADER RFC822.SIZE)").ok().has(`(?s)1 FETCH \(RFC822.HEADER \{\d+\}\r\nFrom: .*\r\n\r\n RFC822.SIZE \d+\)`)
	tc.cmd("a8 FETCH 1 BODY[9]").ok().has(`1 FETCH \(BODY\[9\] \{0\}`)
	tc.cmd("a9 FETCH 1 FLAGS").ok().has(`1 FETCH \(FLAGS \(\\Recent\)\)`) // EXAMINE: BODY[] did not set \Seen
	tc.cmd("a10 FETCH 1 (BODY[HEADER.FIELDS.NOT (From To Subject Date Message-ID Content-Type)])").ok().
		has(`1 FETCH \(BODY\[HEADER.FIELDS.NOT \(FROM TO SUBJECT DATE MESSAGE-ID CONTENT-TYPE\)\] \{\d+\}\r\nMIME-Version: 1.0\r\n\r\n\)`)
	tc.cmd("a11 FETCH 1 (MODSEQ SAVEDATE)").ok().has(`1 FETCH \(MODSEQ \(\d+\) SAVEDATE "`)
	tc.cmd("a12 FETCH 1 ALL").ok().has(`1 FETCH \(FLAGS .* INTERNALDATE .* RFC822.SIZE \d+ ENVELOPE \(`)
	tc.cmd("a13 SEARCH CHARSET UTF-8 SUBJECT \"café\"").ok().has(`SEARCH 1$`)
	tc.cmd("a14 SEARCH BODY \"AU LAIT\"").ok().has(`SEARCH 1$`)
	tc.cmd("a15 SEARCH TEXT nothere").ok().has(`SEARCH$`)
	tc.cmd("a16 SEARCH SENTON 2-Mar-2024 FROM bob").ok().has(`SEARCH 1$`)
	tc.cmd("a17 SEARCH HEADER Message-ID m1").ok().has(`SEARCH 1$`)
	tc.cmd("a18 SEARCH CHARSET ISO-2022-JP ALL").no().code(`BADCHARSET`)
}

// TestFetchStreamsBigBody: BODY[], BODY[TEXT], RFC822 and partials of a message above streamMin come from the
// blob store as they are stored, mixed with other items in one response.
func TestFetchStreamsBigBody(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxMessageBytes = 8 << 20 })
	var sb strings.Builder
	sb.WriteString("Subject: big\r\nFrom: a@example.org\r\n\r\n")
	for i := 0; sb.Len() < 3*streamMin; i++ {
		fmt.Fprintf(&sb, "line %07d of a big message body, long enough to matter\r\n", i)
	}
	msg := sb.String()
	body := msg[strings.Index(msg, "\r\n\r\n")+4:]
	e.deliver("INBOX", msg)
	tc := e.login()
	tc.cmd("SELECT INBOX").ok()
	lit := func(s string) string { return fmt.Sprintf("{%d}\r\n%s", len(s), s) }
	same := func(r *resp, want string) {
		t.Helper()
		if len(r.untagged) != 1 || r.untagged[0] != want {
			got := fmt.Sprint(r.untagged)
			t.Fatalf("%s: got %d lines, %.200q..., want %.200q...", r.cmd, len(r.untagged), got, want)
		}
	}
	same(tc.cmd("FETCH 1 (UID BODY.PEEK[] RFC822.SIZE)").ok(),
		"* 1 FETCH (UID 1 BODY[] "+lit(msg)+" RFC822.SIZE "+fmt.Sprint(len(msg))+")")
	same(tc.cmd("FETCH 1 (BODY.PEEK[TEXT] BODY.PEEK[]<100.300000>)").ok(),
		"* 1 FETCH (BODY[TEXT] "+lit(body)+" BODY[]<100> "+lit(msg[100:300100])+")")
	same(tc.cmd("FETCH 1 (RFC822)").ok(), `* 1 FETCH (FLAGS (\Seen \Recent) RFC822 `+lit(msg)+")")
}

// TestFetchStreamsBigParts: BODY[n] of a big part and BODY[n.TEXT] of a big encapsulated message stream from the
// blob too, and give the same octets as the in-memory path.
func TestFetchStreamsBigParts(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxMessageBytes = 8 << 20 })
	var big strings.Builder
	for i := 0; big.Len() < 2*streamMin; i++ {
		fmt.Fprintf(&big, "line %07d of a big part, long enough to matter\r\n", i)
	}
	part1 := big.String()
	inner := "Subject: inner\r\n\r\n" + part1
	msg := "Subject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n" +
		"--B\r\nContent-Type: text/plain\r\n\r\n" + part1 + "\r\n--B\r\nContent-Type: message/rfc822\r\n\r\n" + inner +
		"\r\n--B--\r\n"
	e.deliver("INBOX", msg)
	tc := e.login()
	tc.cmd("SELECT INBOX").ok()
	lit := func(s string) string { return fmt.Sprintf("{%d}\r\n%s", len(s), s) }
	for _, c := range []struct{ cmd, want string }{
		{"FETCH 1 (BODY.PEEK[1])", "* 1 FETCH (BODY[1] " + lit(part1) + ")"},
		{"FETCH 1 (BODY.PEEK[2])", "* 1 FETCH (BODY[2] " + lit(inner) + ")"},
		{"FETCH 1 (BODY.PEEK[2.TEXT])", "* 1 FETCH (BODY[2.TEXT] " + lit(part1) + ")"},
		{"FETCH 1 (BODY.PEEK[1]<10.300000>)", "* 1 FETCH (BODY[1]<10> " + lit(part1[10:300010]) + ")"},
		{"FETCH 1 (BODY.PEEK[1]<10.20>)", "* 1 FETCH (BODY[1]<10> " + lit(part1[10:30]) + ")"}, // small: in memory
	} {
		r := tc.cmd(c.cmd).ok()
		if len(r.untagged) != 1 || r.untagged[0] != c.want {
			t.Fatalf("%s: got %.200q, want %.200q", c.cmd, fmt.Sprint(r.untagged), c.want)
		}
	}
}

// TestStreamRange: which FETCH items stream from the blob, and which octets: a big part's body, the text of a big
// encapsulated message, the message text; not a small part, nor a header section.
func TestStreamRange(t *testing.T) {
	big := strings.Repeat("x", 2*streamMin)
	msg := "Subject: s\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n\r\nsmall\r\n--B\r\n\r\n" + big +
		"\r\n--B\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\n" + big + "\r\n--B--\r\n"
	meta, err := parseMetaBytes([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	f := &fetchMsg{m: store.Message{Size: int64(len(msg)), Meta: meta}}
	for _, c := range []struct {
		path    []int
		spec    string
		partial bool
		off, n  int64
		ok      bool
		want    string
	}{
		{path: []int{2}, ok: true, want: big},
		{path: []int{3}, spec: "TEXT", ok: true, want: big},
		{path: []int{2}, partial: true, off: 5, n: streamMin, ok: true, want: big[5 : 5+streamMin]},
		{path: []int{1}},
		{path: []int{3}, spec: "HEADER"},
		{path: []int{9}},
	} {
		it := fetchItem{kind: fSection, section: sectionSpec{path: c.path, specifier: c.spec}, partial: c.partial,
			offset: c.off, count: c.n}
		start, n, ok := f.streamRange(it)
		if ok != c.ok || ok && msg[start:start+n] != c.want {
			t.Errorf("%v %s: streams %v (%d+%d), want %v", c.path, c.spec, ok, start, n, c.ok)
		}
	}
}
