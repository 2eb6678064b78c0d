package imapserver

import (
	"fmt"
	"strings"
	"testing"
)

// TestSelectRev1Data: IMAP4rev1 SELECT sends UNSEEN with the first unseen message's sequence number and FLAGS /
// PERMANENTFLAGS with the keywords in use (RFC 3501 6.3.1); IMAP4rev2 sends neither UNSEEN nor RECENT.
func TestSelectRev1Data(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver("INBOX", msgN(1), `\Seen`, "$Work")
	e.deliver("INBOX", msgN(2), `\Seen`)
	e.deliver("INBOX", msgN(3), "Later")
	tc := e.login()
	tc.cmd("SELECT INBOX").ok().has(`OK \[UNSEEN 3\]`).has(`3 RECENT`).
		has(`FLAGS \(\\Answered \\Flagged \\Deleted \\Seen \\Draft \$Work Later\)$`).
		has(`OK \[PERMANENTFLAGS \(\\Answered \\Flagged \\Deleted \\Seen \\Draft \$Work Later \\\*\)\]`)
	tc.cmd("EXAMINE INBOX").ok().has(`OK \[PERMANENTFLAGS \(\)\]`).has(`OK \[UNSEEN 3\]`)
	tc.cmd("STORE 3 +FLAGS (\\Seen)").no().code("READ-ONLY")
	tc2 := e.login()
	tc2.cmd("ENABLE IMAP4rev2").ok()
	tc2.cmd("SELECT INBOX").ok().lacks(`OK \[UNSEEN`).lacks(`\d+ RECENT`).has(`3 EXISTS`)
	tc2.cmd("STORE 1:3 +FLAGS.SILENT (\\Seen)").ok()
	tc3 := e.login()
	tc3.cmd("SELECT INBOX").ok().lacks(`OK \[UNSEEN`)
}

// TestRecent: \Recent goes to one session only (RFC 3501 2.3.2) and lives in the store, so a session that comes
// later, or a server restart, does not see it again; EXAMINE shows it without taking it (RFC 3501 6.3.2).
func TestRecent(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver("INBOX", msgN(1))
	e.deliver("INBOX", msgN(2))
	ro := e.login()
	ro.cmd("EXAMINE INBOX").ok().has(`2 RECENT`)
	ro.cmd("STATUS Sent (RECENT)").ok().has(`STATUS Sent \(RECENT 0\)`)
	other := e.login()
	other.cmd("STATUS INBOX (RECENT MESSAGES)").ok().has(`STATUS INBOX \(MESSAGES 2 RECENT 2\)`)
	a := e.login()
	a.cmd("SELECT INBOX").ok().has(`2 RECENT`)
	a.cmd("FETCH 1 FLAGS").ok().has(`1 FETCH \(FLAGS \(\\Recent\)\)`)
	a.cmd("STATUS INBOX (RECENT)").ok().has(`STATUS INBOX \(RECENT 2\)`)
	other.cmd("STATUS INBOX (RECENT)").ok().has(`STATUS INBOX \(RECENT 0\)`)
	b := e.login()
	b.cmd("SELECT INBOX").ok().has(`0 RECENT`)
	// Selecting the same mailbox again keeps this session's \Recent messages.
	a.cmd("SELECT INBOX").ok().has(`2 RECENT`)
	// A new message is recent for every session that has the mailbox selected when it arrives, and for no
	// session that selects it afterwards.
	e.deliver("INBOX", msgN(3))
	a.cmd("NOOP").ok().has(`3 EXISTS`).has(`3 RECENT`)
	b.cmd("NOOP").ok().has(`3 EXISTS`).has(`1 RECENT`)
	e.login().cmd("SELECT INBOX").ok().has(`0 RECENT`)
	// Expunging a recent message reports the new count.
	a.cmd(`STORE 3 +FLAGS.SILENT (\Deleted)`).ok()
	a.cmd("EXPUNGE").ok().has(`3 EXPUNGE`).has(`2 RECENT`)
	a.cmd("CLOSE").ok()
	a.cmd("SELECT INBOX").ok().has(`0 RECENT`)
}

// TestNewKeywordAnnounced: a keyword new to the mailbox is announced with FLAGS and PERMANENTFLAGS before the
// FETCH that shows it, in this session and in another one.
func TestNewKeywordAnnounced(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver("INBOX", msgN(1))
	a, b := e.login(), e.login()
	a.cmd("SELECT INBOX").ok()
	b.cmd("SELECT INBOX").ok()
	r := a.cmd("STORE 1 +FLAGS (Project)").ok().has(`FLAGS \(.* Project\)`).has(`OK \[PERMANENTFLAGS \(.* Project \\\*\)\]`)
	if !strings.HasPrefix(r.untagged[len(r.untagged)-1], "* 1 FETCH") {
		t.Fatalf("FETCH not after FLAGS: %q", r.untagged)
	}
	b.cmd("NOOP").ok().has(`FLAGS \(.* Project\)`).has(`1 FETCH \(UID 1 FLAGS \(Project\)\)`)
	a.cmd("STORE 1 +FLAGS (project)").ok().lacks(`FLAGS \(`)
}

// TestAuthenticateUnknownMechanism: NO for a mechanism the server lacks, whatever follows (RFC 9051 6.2.2).
func TestAuthenticateUnknownMechanism(t *testing.T) {
	e := newEnv(t, nil)
	tc := e.dial()
	tc.cmd("a1 AUTHENTICATE KERBEROS_V4").no()
	tc.cmd("a2 AUTHENTICATE KERBEROS_V4 extra").no()
	tc.cmd("a3 AUTHENTICATE PLAIN extra").bad()
	tc.send("")
	if l := tc.line(); !strings.HasPrefix(l, "* BAD ") {
		t.Fatalf("empty line answered %q", l)
	}
	tc.cmd("a4 NOOP").ok()
}

// TestAppendKeepsZone: INTERNALDATE keeps the zone APPEND gave (RFC 9051 2.3.3), through COPY too.
func TestAppendKeepsZone(t *testing.T) {
	e := newEnv(t, nil)
	tc := e.login()
	msg := "Subject: zone\r\n\r\nbody\r\n"
	tc.send(fmt.Sprintf(`a1 APPEND INBOX "17-Jul-1996 02:44:25 -0700" {%d+}`, len(msg)))
	tc.send(msg[:len(msg)-2]) // the literal, its CRLF included
	tc.send("")               // the end of the command line
	tc.read("a1", "APPEND").ok()
	tc.cmd("SELECT INBOX").ok()
	tc.cmd("COPY 1 Sent").ok()
	tc.cmd("FETCH 1 INTERNALDATE").ok().has(`1 FETCH \(INTERNALDATE "17-Jul-1996 02:44:25 -0700"\)`)
	tc.cmd("SELECT Sent").ok()
	tc.cmd("FETCH 1 INTERNALDATE").ok().has(`1 FETCH \(INTERNALDATE "17-Jul-1996 02:44:25 -0700"\)`)
}

// TestSearchBodyPreamble: BODY searches text parts and multipart preambles and epilogues, not boundaries nor the
// headers of an encapsulated message.
func TestSearchBodyPreamble(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver("INBOX", "Subject: m\r\nContent-Type: multipart/mixed; boundary=XYZ\r\n\r\n"+
		"Yet another preamble\r\n--XYZ\r\nContent-Type: text/plain\r\n\r\nRhubarb\r\n"+
		"--XYZ\r\nContent-Type: message/rfc822\r\n\r\nFrom: Timothy <t@example.org>\r\nSubject: inner\r\n\r\nCustard\r\n"+
		"--XYZ--\r\nThe epilogue\r\n")
	tc := e.login()
	tc.cmd("SELECT INBOX").ok()
	for needle, want := range map[string]string{"another": "1", "rhubarb": "1", "custard": "1", "epilogue": "1",
		"Timothy": "", "XYZ": "", "inner": ""} {
		tc.cmd("SEARCH BODY " + needle).ok().has(strings.TrimSuffix("SEARCH "+want, " ") + "$")
	}
	// TEXT searches MIME headers too (RFC 9051 6.4.4).
	tc.cmd("SEARCH TEXT inner").ok().has(`SEARCH 1$`)
	tc.cmd("SEARCH TEXT rfc822").ok().has(`SEARCH 1$`)
}

// TestSubscribeNonexistent: a name may be subscribed without its mailbox (RFC 3501 6.3.6); LIST shows it
// \NonExistent (RFC 5258 3.4) and LSUB lists it.
func TestSubscribeNonexistent(t *testing.T) {
	e := newEnv(t, nil)
	tc := e.login()
	tc.cmd("SUBSCRIBE Ghost").ok()
	tc.cmd(`LIST (SUBSCRIBED) "" Ghost`).ok().has(`LIST \(\\Subscribed \\NonExistent\) "/" Ghost`)
	tc.cmd(`LSUB "" Ghost`).ok().has(`LSUB \(.*\) "/" Ghost`)
	tc.cmd("UNSUBSCRIBE Ghost").ok()
	tc.cmd(`LSUB "" Ghost`).ok().lacks(`LSUB`)
}
