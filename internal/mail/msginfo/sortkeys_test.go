package msginfo

import (
	"reflect"
	"testing"
	"time"
)

func TestBaseSubject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		reply    bool
	}{
		{"", "", false},
		{"Hello", "Hello", false},
		{"Re: Hello", "Hello", true},
		{"RE:Hello", "Hello", true},
		{"re :  Hello", "Hello", true},
		{"Fwd: Hello", "Hello", true},
		{"FW: Hello", "Hello", true},
		{"Re: Re: Fwd: Hello", "Hello", true},
		{"Re[2]: Hello", "Hello", true},        // subj-refwd with a blob before the colon
		{"[list] Re: Hello", "Hello", true},    // *subj-blob subj-refwd
		{"[list] Hello", "Hello", false},       // (4) a blob leaving a non-empty subject is removed
		{"[list]", "[list]", false},            // ... but not when nothing would remain
		{"[a][b] [c] Hello", "Hello", false},   // repeated blobs
		{"Hello (fwd)", "Hello", true},         // (2) subj-trailer
		{"Hello (FWD) (fwd)  ", "Hello", true}, // repeated trailers and whitespace
		{"[fwd: Hello]", "Hello", true},        // (6) subj-fwd
		{"[Fwd: Re: [list] Hello (fwd)]", "Hello", true},
		{"Re: [fwd: [fwd: Hello]]", "Hello", true}, // nested
		{"Hello\tto   you", "Hello to you", false}, // (1) whitespace collapsed
		{"=?utf-8?q?Re=3A_Gr=C3=BC=C3=9Fe?=", "Grüße", true},
		{"=?iso-8859-1?q?Caf=E9?= =?iso-8859-1?q?_au_lait?=", "Café au lait", false},
		{"Re: (fwd)", "", true},
		{"Ref: Hello", "Ref: Hello", false}, // "re" must be followed by the colon
		{"Reply", "Reply", false},
	}
	for _, tc := range tests {
		got, reply := baseSubject(tc.in)
		if got != tc.want || reply != tc.reply {
			t.Errorf("baseSubject(%q) = %q, %v; want %q, %v", tc.in, got, reply, tc.want, tc.reply)
		}
		if BaseSubject(tc.in) != tc.want {
			t.Errorf("BaseSubject(%q) differs", tc.in)
		}
	}
}

func TestSortKeys(t *testing.T) {
	t.Parallel()
	msg := "Date: Tue, 1 Jul 2003 10:52:37 +0200 (CEST)\r\n" +
		"From: \"=?utf-8?q?Zo=C3=AB?=\" <zoe@x.test>\r\n" +
		"To: group: ; , <bob@y.test>\r\n" +
		"Cc: Carol <carol@z.test>\r\n" +
		"Subject: Re: [list] Meeting\r\n" +
		"Message-ID: <m1@x.test>\r\n" +
		"In-Reply-To: Your message <m0@x.test> of Monday\r\n" +
		"References: <r1@x.test>\r\n <r2@x.test> junk <broken\r\n" +
		"\r\nbody\r\n"
	i := mustParse(t, msg)
	checkInfo(t, []byte(msg), i)
	want := SortKeys{
		Date:         time.Date(2003, 7, 1, 8, 52, 37, 0, time.UTC),
		Subject:      "MEETING",
		SubjectReply: true,
		From:         "ZOE", To: "BOB", Cc: "CAROL",
		DisplayFrom: "Zoë", DisplayTo: "bob@y.test",
		MessageID: "m1@x.test", InReplyTo: "m0@x.test",
		References: []string{"r1@x.test", "r2@x.test"},
	}
	got := i.Sort
	if !got.Date.Equal(want.Date) {
		t.Errorf("Date = %v", got.Date)
	}
	got.Date = want.Date
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SortKeys\n got %+v\nwant %+v", got, want)
	}

	for _, d := range []string{"1 Jul 2003 10:52 +0200", "Tue,  1 Jul 2003 10:52:37 +0200",
		"Tue, 1 Jul 03 10:52:37 +0200", "Tue, 1 Jul 2003 10:52:37 GMT"} {
		if parseDate(d).IsZero() {
			t.Errorf("parseDate(%q) failed", d)
		}
	}
	if !parseDate("not a date").IsZero() {
		t.Errorf("garbage date parsed")
	}
}
