package imapserver

import (
	"fmt"
	"testing"
)

func mail(subject, from, date, id, refs string, size int) string {
	h := fmt.Sprintf("From: %s\r\nTo: alice@example.org\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s>\r\n", from, subject, date, id)
	if refs != "" {
		h += "References: " + refs + "\r\nIn-Reply-To: " + refs + "\r\n"
	}
	return h + "\r\n" + fmt.Sprintf("%0*d\r\n", size, 0)
}

func TestSortAndThread(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver("INBOX", mail("Zebra", "Carol <carol@x.org>", "Mon, 04 Mar 2024 10:00:00 +0000", "a@x", "", 3000))
	e.deliver("INBOX", mail("apple", "bob@x.org", "Sun, 03 Mar 2024 10:00:00 +0000", "b@x", "", 1000))
	e.deliver("INBOX", mail("Re: Zebra", "alice@x.org", "Tue, 05 Mar 2024 10:00:00 +0000", "c@x", "<a@x>", 2000))
	e.deliver("INBOX", mail("Re: apple", "dave@x.org", "Wed, 06 Mar 2024 10:00:00 +0000", "d@x", "<b@x>", 500))
	e.deliver("INBOX", mail("Re: Zebra", "eve@x.org", "Thu, 07 Mar 2024 10:00:00 +0000", "e@x", "<a@x> <c@x>", 100))
	tc := e.login()
	tc.cmd("a1 SELECT INBOX").ok()
	tc.cmd("a2 SORT (SUBJECT) UTF-8 ALL").ok().has(`SORT 2 4 1 3 5$`)
	tc.cmd("a3 SORT (REVERSE SIZE) UTF-8 ALL").ok().has(`SORT 1 3 2 4 5$`)
	tc.cmd("a4 SORT (DATE) US-ASCII ALL").ok().has(`SORT 2 1 3 4 5$`)
	tc.cmd("a5 SORT (FROM) UTF-8 ALL").ok().has(`SORT 3 2 1 4 5$`)
	tc.cmd("a6 SORT (DISPLAYFROM) UTF-8 ALL").ok().has(`SORT 3 2 1 4 5$`)
	tc.cmd("a7 UID SORT (ARRIVAL) UTF-8 SMALLER 1200").ok().has(`SORT 2 4 5$`)
	tc.cmd("a8 THREAD ORDEREDSUBJECT UTF-8 ALL").ok().has(`THREAD \(2 4\)\(1 \(3\)\(5\)\)$`)
	tc.cmd("a9 THREAD REFERENCES UTF-8 ALL").ok().has(`THREAD \(2 4\)\(1 3 5\)$`)
	tc.cmd("a10 THREAD BOGUS UTF-8 ALL").bad()
	tc.cmd("a11 SORT (SUBJECT) KOI8-R ALL").no().code("BADCHARSET")
}
