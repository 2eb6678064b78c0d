package msginfo

import (
	"fmt"
	"strings"
	"testing"
)

// rfcBody builds a body of exactly size octets holding exactly lines CRLF line breaks (a final line
// without break fills the rest), for the size/line numbers of the RFC examples.
func rfcBody(size, lines int, ch byte) string {
	if lines == 0 {
		return strings.Repeat(string(ch), size)
	}
	content := size - 2*lines
	var b strings.Builder
	for k := 0; k < lines; k++ {
		n := content / lines
		if k < content%lines {
			n++
		}
		b.WriteString(strings.Repeat(string(ch), n))
		b.WriteString("\r\n")
	}
	return b.String()
}

// TestRFC9051Examples reproduces the FETCH examples of RFC 9051 7.5.2.
func TestRFC9051Examples(t *testing.T) {
	t.Parallel()
	msg := crlf(`Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)
From: Terry Gray <gray@cac.washington.edu>
Subject: IMAP4rev2 WG mtg summary and minutes
To: imap@cac.washington.edu
cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>
Message-Id: <B27397-0100000@cac.washington.edu>
MIME-Version: 1.0
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII
Content-Transfer-Encoding: 7BIT

`) + rfcBody(3028, 92, 'x')
	i := mustParse(t, msg)
	checkInfo(t, []byte(msg), i)
	wantEnv := `("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev2 WG mtg summary and minutes" ` +
		`(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) ` +
		`(("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) ` +
		`((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL ` +
		`"<B27397-0100000@cac.washington.edu>")`
	if got := string(AppendEnvelope(nil, &i.Envelope)); got != wantEnv {
		t.Errorf("ENVELOPE\n got %s\nwant %s", got, wantEnv)
	}
	wantBody := `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)`
	if got := string(AppendBodyStructure(nil, i.Root, false)); got != wantBody {
		t.Errorf("BODY\n got %s\nwant %s", got, wantBody)
	}

	mixed := crlf(`From: a@b.test
Content-Type: MULTIPART/MIXED; BOUNDARY="xyz"

--xyz
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII
Content-Transfer-Encoding: 7BIT

`) + rfcBody(1152, 23, 'y') + crlf(`
--xyz
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME=cc.diff
Content-ID: <960723163407.20117h@cac.washington.edu>
Content-Description: Compiler diff
Content-Transfer-Encoding: BASE64

`) + strings.TrimSuffix(rfcBody(4554+2, 74, 'A'), "\r\n") + crlf(`
--xyz--
`)
	i = mustParse(t, mixed)
	checkInfo(t, []byte(mixed), i)
	want := `(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)("TEXT" "PLAIN" ("CHARSET" ` +
		`"US-ASCII" "NAME" "cc.diff") "<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" ` +
		`4554 73) "MIXED")`
	if got := string(AppendBodyStructure(nil, i.Root, false)); got != want {
		t.Errorf("BODYSTRUCTURE\n got %s\nwant %s", got, want)
	}
}

func TestEnvelope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, header, want string
	}{
		{"missing everything", "X-Foo: bar\n",
			`(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)`},
		{"sender and reply-to default to from, empty reply-to too",
			"From: \"Joe Q. Public\" <john.q.public@example.com>\nReply-To:\nSubject: Hi\n",
			`(NIL "Hi" (("Joe Q. Public" NIL "john.q.public" "example.com")) ` +
				`(("Joe Q. Public" NIL "john.q.public" "example.com")) ` +
				`(("Joe Q. Public" NIL "john.q.public" "example.com")) NIL NIL NIL NIL NIL)`},
		{"groups (RFC 5322 A.1.3)",
			"To: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;\n" +
				"Cc: Undisclosed recipients:;\n",
			`(NIL NIL NIL NIL NIL ((NIL NIL "A Group" NIL)("Ed Jones" NIL "c" "a.test")` +
				`(NIL NIL "joe" "where.test")("John" NIL "jdoe" "one.test")(NIL NIL NIL NIL)) ` +
				`((NIL NIL "Undisclosed recipients" NIL)(NIL NIL NIL NIL)) NIL NIL NIL)`},
		{"malformed from, Dovecot style", "From: foo\nTo: @example.com, <>\n",
			`(NIL NIL ((NIL NIL "foo" "MISSING_DOMAIN")) ((NIL NIL "foo" "MISSING_DOMAIN")) ` +
				`((NIL NIL "foo" "MISSING_DOMAIN")) ((NIL NIL "MISSING_MAILBOX" "example.com")` +
				`(NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN")) NIL NIL NIL NIL)`},
		{"route, comment as name, quoted local part, domain literal",
			"From: <@r1.test,@r2.test:joe@x.test>\nTo: bob@x.test (Bob Smith), \"a b\"@[1.2.3.4]\n",
			`(NIL NIL ((NIL "@r1.test,@r2.test" "joe" "x.test")) ((NIL "@r1.test,@r2.test" "joe" "x.test")) ` +
				`((NIL "@r1.test,@r2.test" "joe" "x.test")) (("Bob Smith" NIL "bob" "x.test")` +
				`(NIL NIL "a b" "[1.2.3.4]")) NIL NIL NIL NIL)`},
		{"encoded words stay raw; folded subject is unfolded",
			"Subject: =?utf-8?q?J=C3=B5gi?=\n  and more\nFrom: =?utf-8?q?J=C3=B5gi?= <j@x.test>\n",
			`(NIL "=?utf-8?q?J=C3=B5gi?=  and more" (("=?utf-8?q?J=C3=B5gi?=" NIL "j" "x.test")) ` +
				`(("=?utf-8?q?J=C3=B5gi?=" NIL "j" "x.test")) (("=?utf-8?q?J=C3=B5gi?=" NIL "j" "x.test")) ` +
				`NIL NIL NIL NIL NIL)`},
		{"quotes and backslashes are escaped", "Subject: say \"hi\" \\o/\n",
			`(NIL "say \"hi\" \\o/" NIL NIL NIL NIL NIL NIL NIL NIL)`},
		{"8-bit text is a literal", "Subject: caf\xc3\xa9\n",
			"(NIL {5}\r\ncaf\xc3\xa9 NIL NIL NIL NIL NIL NIL NIL NIL)"},
		{"stray CR removed, NUL made 0x80 in a literal", "Subject: a\rb\x00c\n",
			"(NIL {4}\r\nab\x80c NIL NIL NIL NIL NIL NIL NIL NIL)"},
		{"first occurrence wins; in-reply-to, message-id, bcc",
			"Message-ID: <1@x>\nMessage-ID: <2@x>\nIn-Reply-To: <0@x>\nBcc: b@x\nDate: 1 Jan 2020 00:00 +0000\n",
			`("1 Jan 2020 00:00 +0000" NIL NIL NIL NIL NIL NIL ((NIL NIL "b" "x")) "<0@x>" "<1@x>")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, nl := range []string{"\n", "\r\n"} {
				msg := strings.ReplaceAll(tc.header+"\nbody\n", "\n", nl)
				i := mustParse(t, msg)
				checkInfo(t, []byte(msg), i)
				if got := string(AppendEnvelope(nil, &i.Envelope)); got != tc.want {
					t.Errorf("%q:\n got %s\nwant %s", nl, got, tc.want)
				}
			}
		})
	}
}

func TestBodyStructure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, msg, body, bodystructure string
	}{
		{"no content-type: text/plain us-ascii", "Subject: x\n\nhello\nworld\n",
			`("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 12 2)`,
			`("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 12 2 NIL NIL NIL NIL)`},
		{"no body at all", "Subject: x\n",
			`("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)`,
			`("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)`},
		{"invalid content-type, charset added to text/html",
			"Content-Type: text\n\nx", `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0)`, ""},
		{"default charset appended after other params", "Content-Type: text/html; format=flowed\n\nx",
			`("text" "html" ("format" "flowed" "charset" "us-ascii") NIL NIL "7bit" 1 0)`, ""},
		{"single part extension data",
			"Content-Type: application/pdf; name=\"a b.pdf\"\nContent-Transfer-Encoding: base64\n" +
				"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\nContent-Disposition: attachment; filename=\"a b.pdf\"; size=3\n" +
				"Content-Language: en, de (german)\nContent-Location: http://x.test/a.pdf\nContent-ID: <id@x>\n" +
				"Content-Description: a file\n\nQUJD\n",
			`("application" "pdf" ("name" "a b.pdf") "<id@x>" "a file" "base64" 5)`,
			`("application" "pdf" ("name" "a b.pdf") "<id@x>" "a file" "base64" 5 "Q2hlY2sgSW50ZWdyaXR5IQ==" ` +
				`("attachment" ("filename" "a b.pdf" "size" "3")) ("en" "de") "http://x.test/a.pdf")`},
		{"rfc 2231 continuations joined",
			"Content-Type: application/x-stuff;\n title*0*=us-ascii'en'This%20is%20even%20more%20;\n" +
				" title*1*=%2A%2A%2Afun%2A%2A%2A%20;\n title*2=\"isn't it!\"\n\nx",
			`("application" "x-stuff" ("title*" "us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn%27t%20it!") NIL NIL "7bit" 1)`,
			""},
		{"multipart extension data, preamble and epilogue",
			"Content-Type: multipart/alternative; boundary=b1\nContent-Disposition: inline\n" +
				"Content-Language: fr\nContent-Location: cid:x\n\npreamble\n--b1\n\none\n--b1\n" +
				"Content-Type: text/html; charset=utf-8\n\n<p>two</p>\n--b1--\nepilogue\n",
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 3 0)("text" "html" ("charset" "utf-8") ` +
				`NIL NIL "7bit" 10 0) "alternative")`,
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 3 0 NIL NIL NIL NIL)("text" "html" ` +
				`("charset" "utf-8") NIL NIL "7bit" 10 0 NIL NIL NIL NIL) "alternative" ("boundary" "b1") ` +
				`("inline" NIL) ("fr") "cid:x")`},
		{"message/rfc822 inside multipart",
			"Content-Type: multipart/mixed; boundary=\"=_x\"\n\n--=_x\n\nhi\n--=_x\n" +
				"Content-Type: message/rfc822\n\nSubject: inner\nFrom: i@x.test\n\ninner body\n--=_x--\n",
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 2 0)("message" "rfc822" NIL NIL NIL ` +
				`"7bit" 41 (NIL "inner" ((NIL NIL "i" "x.test")) ((NIL NIL "i" "x.test")) ((NIL NIL "i" "x.test")) ` +
				`NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0) 3) "mixed")`,
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 2 0 NIL NIL NIL NIL)("message" "rfc822" ` +
				`NIL NIL NIL "7bit" 41 (NIL "inner" ((NIL NIL "i" "x.test")) ((NIL NIL "i" "x.test")) ` +
				`((NIL NIL "i" "x.test")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL ` +
				`"7bit" 10 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL) "mixed" ("boundary" "=_x") NIL NIL NIL)`},
		{"digest parts default to message/rfc822",
			"Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: s\n\nb\n--d--\n",
			`(("message" "rfc822" NIL NIL NIL "7bit" 13 (NIL "s" NIL NIL NIL NIL NIL NIL NIL NIL) ` +
				`("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0) 2) "digest")`, ""},
		{"multipart without boundary is a leaf", "Content-Type: multipart/mixed\n\n--x\nfoo\n",
			`("multipart" "mixed" NIL NIL NIL "7bit" 8)`, ""},
		{"multipart without parts", "Content-Type: multipart/mixed; boundary=z\n\nno parts here\n",
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")`,
			`(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" ` +
				`("boundary" "z") NIL NIL NIL)`},
		{"base64 message/rfc822 is not parsed",
			"Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeAoK\n",
			`("message" "rfc822" NIL NIL NIL "base64" 17)`, ""},
		{"missing final boundary, nested",
			"Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/related; boundary=i\n\n" +
				"--i\n\na\n--i\n\nb\n--o\n\nc",
			`((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0)("text" "plain" ("charset" ` +
				`"us-ascii") NIL NIL "7bit" 1 0) "related")("text" "plain" ("charset" "us-ascii") NIL NIL ` +
				`"7bit" 1 0) "mixed")`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			i := mustParse(t, tc.msg)
			checkInfo(t, []byte(tc.msg), i)
			if got := string(AppendBodyStructure(nil, i.Root, false)); got != tc.body {
				t.Errorf("BODY\n got %s\nwant %s", got, tc.body)
			}
			if tc.bodystructure == "" {
				return
			}
			if got := string(AppendBodyStructure(nil, i.Root, true)); got != tc.bodystructure {
				t.Errorf("BODYSTRUCTURE\n got %s\nwant %s", got, tc.bodystructure)
			}
			// The same message with CRLF: same structure, sizes grow by one per line break.
			c := crlf(tc.msg)
			j := mustParse(t, c)
			checkInfo(t, []byte(c), j)
			if a, b := fmt.Sprint(len(allPaths(i))), fmt.Sprint(len(allPaths(j))); a != b {
				t.Errorf("CRLF copy has %s parts, LF %s", b, a)
			}
		})
	}
}

func TestLongStringIsLiteral(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", maxQuoted+1)
	got := string(appendString(nil, long))
	if want := fmt.Sprintf("{%d}\r\n%s", len(long), long); got != want {
		t.Errorf("got %.40q", got)
	}
	if got := string(appendNString(nil, "")); got != "NIL" {
		t.Errorf("empty nstring = %s", got)
	}
}
