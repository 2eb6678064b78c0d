package msginfo

import "testing"

const searchMsg = "From: =?utf-8?b?R3LDvMOfZQ==?= <gruss@x.test>\r\n" +
	"To: =?koi8-r?b?8NLJ18XUIM3J0g==?= <ivan@x.test>\r\n" +
	"Subject: =?iso-8859-1?q?D=E9j=E0?= vu\r\n" +
	"X-Raw: D\xe9j\xe0 raw latin-1\r\n" +
	"X-Folded: first\r\n second line\r\n" +
	"Content-Type: multipart/mixed; boundary=b\r\n" +
	"\r\n" +
	"--b\r\n" +
	"Content-Type: text/plain; charset=koi8-r\r\n" +
	"Content-Transfer-Encoding: 8bit\r\n" +
	"\r\n" +
	"\xf0\xd2\xc9\xd7\xc5\xd4 \xcd\xc9\xd2\r\n" +
	"--b\r\n" +
	"Content-Type: text/plain; charset=iso-8859-1\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Caf=E9 cr=E8me br=FB=\r\nl=E9e\r\n" +
	"--b\r\n" +
	"Content-Type: message/rfc822\r\n" +
	"\r\n" +
	"Subject: inner\r\n" +
	"Content-Type: text/html; charset=koi8-r\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"8NLJ18XUIM3J0g==\r\n" +
	"--b\r\n" +
	"Content-Type: application/octet-stream\r\n" +
	"\r\n" +
	"secret-binary-needle\r\n" +
	"--b--\r\n"

func TestSearch(t *testing.T) {
	t.Parallel()
	msg := []byte(searchMsg)
	i := mustParse(t, searchMsg)
	checkInfo(t, msg, i)
	tests := []struct {
		kind, field, needle string
		want                bool
	}{
		{"header", "From", "grüße", true},
		{"header", "from", "GRÜSSE", false}, // simple case folding only
		{"header", "From", "GRÜßE", true},
		{"header", "FROM", "gruss@x.test", true},
		{"header", "To", "привет МИР", true}, // koi8-r encoded word
		{"header", "Subject", "déjà VU", true},
		{"header", "Subject", "grüße", false},
		{"header", "X-Raw", "déjà raw", true}, // raw 8-bit taken as Latin-1
		{"header", "X-Folded", "first second", true},
		{"header", "X-Folded", "", true},
		{"header", "X-Missing", "", false},
		{"header", "", "ivan@", true}, // any field
		{"body", "", "привет", true},  // koi8-r 8bit
		{"body", "", "CAFÉ CRÈME BRÛLÉE", true},
		{"body", "", "мир", true}, // koi8-r base64 inside message/rfc822
		{"body", "", "secret-binary-needle", false},
		{"body", "", "Subject", false},
		{"text", "", "Subject", true},
		{"text", "", "brûlée", true},
		{"text", "", "nowhere", false},
	}
	for _, tc := range tests {
		var got bool
		switch tc.kind {
		case "header":
			got = HeaderContains(msg, i, tc.field, tc.needle)
		case "body":
			got = BodyContains(msg, i, tc.needle)
		default:
			got = TextContains(msg, i, tc.needle)
		}
		if got != tc.want {
			t.Errorf("%s %s %q = %v, want %v", tc.kind, tc.field, tc.needle, got, tc.want)
		}
	}
	if got := i.Sort.DisplayTo; got != "Привет мир" {
		t.Errorf("DisplayTo = %q", got)
	}
}
