package imapserver

import (
	"fmt"
	"strings"
	"testing"
)

func TestGreetingCapabilityLogin(t *testing.T) {
	e := newEnv(t, nil)
	tc := e.dial()
	tc.cmd("a1 CAPABILITY").ok().has(`CAPABILITY IMAP4rev1 IMAP4rev2 STARTTLS AUTH=PLAIN`)
	tc.cmd("a2 NOOP").ok()
	tc.cmd("a3 SELECT INBOX").bad()
	tc.cmd("a4 LOGIN alice@example.org wrong").no().code(`AUTHENTICATIONFAILED`)
	tc.cmd(`a5 LOGIN "alice@example.org" "secret"`).ok().code(`\[CAPABILITY IMAP4rev1`)
	tc.cmd("a6 LOGIN alice@example.org secret").bad()
	tc.cmd("a7 LOGOUT").ok().has("BYE")
}

func TestLoginDisabledBeforeTLS(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AllowPlaintextAuth = false })
	tc := e.dial()
	r := tc.cmd("a1 CAPABILITY").ok().has("CAPABILITY .*LOGINDISABLED")
	if strings.Contains(r.untagged[0], "AUTH=") {
		t.Fatalf("AUTH= offered before TLS: %s", r.untagged[0])
	}
	tc.cmd("a2 LOGIN alice@example.org secret").no().code("PRIVACYREQUIRED")
	tc.cmd("a3 AUTHENTICATE PLAIN").no()
	tc.starttls()
	tc.cmd("a5 CAPABILITY").ok().has("CAPABILITY .*AUTH=PLAIN").lacks("CAPABILITY .*STARTTLS")
	tc.cmd("a6 LOGIN alice@example.org secret").ok()
}

func TestAuthenticatePlain(t *testing.T) {
	e := newEnv(t, nil)
	tc := e.dial()
	tc.cmd("a1 AUTHENTICATE PLAIN " + plainIR("alice@example.org", "secret")).ok()
	tc2 := e.dial()
	tc2.send("b1 AUTHENTICATE PLAIN")
	if l := tc2.line(); l != "+ " {
		t.Fatalf("continuation %q", l)
	}
	tc2.send(plainIR("alice@example.org", "secret"))
	tc2.read("b1", "AUTHENTICATE").ok()
	tc3 := e.dial()
	tc3.send("c1 AUTHENTICATE PLAIN")
	tc3.line()
	tc3.send("*")
	tc3.read("c1", "cancel").bad()
	tc3.cmd("c2 AUTHENTICATE CRAM-MD5").no()
}

func TestAuthFailuresDisconnect(t *testing.T) {
	e := newEnv(t, nil)
	tc := e.dial()
	tc.cmd("a1 LOGIN alice@example.org x").no()
	tc.cmd("a2 LOGIN alice@example.org y").no()
	tc.cmd("a3 LOGIN alice@example.org z").no()
	if l := tc.line(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("got %q, want BYE", l)
	}
	tc.c.SetReadDeadline(timeSoon())
	if _, err := tc.br.ReadByte(); err == nil {
		t.Fatal("connection still open after 3 failures")
	}
}

func TestSelectFetchStoreSearchExpunge(t *testing.T) {
	e := newEnv(t, nil)
	for i := 1; i <= 5; i++ {
		e.deliver("INBOX", msgN(i))
	}
	tc := e.login()
	tc.cmd("a1 SELECT INBOX").ok().code(`\[READ-WRITE\]`).has("5 EXISTS").has("5 RECENT").
		has(`OK \[UIDVALIDITY \d+\]`).has(`OK \[UIDNEXT 6\]`).has(`OK \[PERMANENTFLAGS \(.*\\\*\)\]`).
		has(`FLAGS \(`).has(`OK \[HIGHESTMODSEQ \d+\]`)
	tc.cmd("a2 FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)").ok().has(`1 FETCH \(UID 1 FLAGS \(\\Recent\) RFC822.SIZE \d+ INTERNALDATE "01-Mar-2024 12:00:00 \+0000"\)`)
	if n := tc.cmd("a3 FETCH 1:* FLAGS").ok().count(`\d+ FETCH`); n != 5 {
		t.Fatalf("%d FETCH responses", n)
	}
	tc.cmd("a4 STORE 2 +FLAGS (\\Seen \\Flagged)").ok().has(`2 FETCH \(FLAGS \(.*\\Seen.*\)\)`)
	tc.cmd("a5 STORE 3 +FLAGS.SILENT (\\Deleted)").ok().lacks("3 FETCH")
	tc.cmd("a6 SEARCH UNSEEN").ok().has(`SEARCH 1 3 4 5$`)
	tc.cmd("a7 UID SEARCH DELETED").ok().has(`SEARCH 3$`)
	tc.cmd("a8 SEARCH OR FLAGGED DELETED").ok().has(`SEARCH 2 3$`)
	tc.cmd("a9 FETCH 4 BODY[]").ok().has(`4 FETCH \(FLAGS \(.*\\Seen.*\) BODY\[\] \{\d+\}`)
	tc.cmd("a10 FETCH 5 BODY.PEEK[HEADER.FIELDS (Subject)]").ok().has(`5 FETCH \(BODY\[HEADER.FIELDS \(SUBJECT\)\] \{\d+\}\r\nSubject: message 5\r\n\r\n\)`)
	tc.cmd("a11 FETCH 5 FLAGS").ok().has(`5 FETCH \(FLAGS \(\\Recent\)\)`)
	tc.cmd("a12 EXPUNGE").ok().has("3 EXPUNGE")
	tc.cmd("a13 FETCH 3 UID").ok().has(`3 FETCH \(UID 4\)`)
	tc.cmd("a14 UID FETCH 4:* FLAGS").ok().has(`3 FETCH \(UID 4 FLAGS`).has(`4 FETCH \(UID 5 FLAGS`)
	tc.cmd("a15 FETCH 9 FLAGS").bad()
	tc.cmd("a16 CLOSE").ok()
	tc.cmd("a17 FETCH 1 FLAGS").bad()
}

func TestAppendAndUIDPlus(t *testing.T) {
	e := newEnv(t, nil)
	tc := e.login()
	msg := "Subject: appended\r\n\r\nbody\r\n"
	tc.send(fmt.Sprintf("a1 APPEND INBOX (\\Seen) \"05-Mar-2024 10:11:12 +0100\" {%d}", len(msg)))
	if l := tc.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("continuation %q", l)
	}
	tc.send(msg)
	tc.read("a1", "APPEND").ok().code(`\[APPENDUID \d+ 1\]`)
	// LITERAL+ and MULTIAPPEND in one go.
	tc.send(fmt.Sprintf("a2 APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s", len(msg), msg, len(msg), msg))
	tc.read("a2", "MULTIAPPEND").ok().code(`\[APPENDUID \d+ 2:3\]`)
	tc.cmd("a3 APPEND Nope {5+}\r\nhello").no().code("TRYCREATE")
	tc.send("a4 APPEND Nope {5}")
	tc.read("a4", "APPEND sync nonexistent").no().code("TRYCREATE")
	tc.send("a5 APPEND INBOX {99999999}")
	tc.read("a5", "APPEND too big").no().code("TOOBIG")
	tc.cmd("a6 SELECT INBOX").ok().has("3 EXISTS")
	tc.cmd("a7 FETCH 1 (FLAGS INTERNALDATE BODY[])").ok().
		has(`1 FETCH \(FLAGS \(\\Seen( \\Recent)?\) INTERNALDATE "05-Mar-2024 (10:11:12 \+0100|09:11:12 \+0000)" BODY\[\] \{\d+\}\r\nSubject: appended`)
	// APPEND to the selected mailbox announces the message.
	tc.cmd(fmt.Sprintf("a8 APPEND INBOX {%d+}\r\n%s", len(msg), msg)).ok().has("4 EXISTS")
}

func TestMailboxCommands(t *testing.T) {
	e := newEnv(t, nil)
	tc := e.login()
	tc.cmd("a1 LIST \"\" \"\"").ok().has(`LIST \(\\Noselect\) "/" ""`)
	tc.cmd("a2 LIST \"\" *").ok().has(`LIST \(\\HasNoChildren\) "/" INBOX`).has(`LIST \(\\HasNoChildren \\Sent\) "/" Sent`)
	tc.cmd("a3 CREATE Work/Projects/2024").ok()
	tc.cmd("a4 CREATE Work").no().code("ALREADYEXISTS")
	tc.cmd("a5 LIST \"\" %").ok().has(`LIST \(\\HasChildren\) "/" Work`)
	tc.cmd("a6 LIST Work/ %").ok().has(`LIST \(\\HasChildren\) "/" Work/Projects`)
	tc.cmd("a7 RENAME Work Job").ok()
	tc.cmd("a8 LIST \"\" Job*").ok().has(`LIST .*"/" Job/Projects/2024`)
	tc.cmd("a9 DELETE Nope").no().code("NONEXISTENT")
	tc.cmd("a10 DELETE INBOX").no()
	tc.cmd("a11 SUBSCRIBE Job").ok()
	tc.cmd("a12 LSUB \"\" *").ok().has(`LSUB \(\) "/" Job`)
	tc.cmd("a13 LIST (SUBSCRIBED) \"\" *").ok().has(`LIST \(\\HasChildren \\Subscribed\) "/" Job`)
	tc.cmd("a14 UNSUBSCRIBE Job").ok()
	tc.cmd("a15 STATUS INBOX (MESSAGES UNSEEN UIDNEXT UIDVALIDITY SIZE HIGHESTMODSEQ APPENDLIMIT)").ok().
		has(`STATUS INBOX \(MESSAGES 0 UIDNEXT 1 UIDVALIDITY \d+ SIZE 0 UNSEEN 0 HIGHESTMODSEQ \d+ APPENDLIMIT 1048576\)`)
	tc.cmd("a16 NAMESPACE").ok().has(`NAMESPACE \(\("" "/"\)\) NIL NIL`)
	tc.cmd("a17 CREATE Archive (USE (\\Archive))").ok()
	tc.cmd("a18 LIST (SPECIAL-USE) \"\" *").ok().has(`LIST .*\\Archive.* Archive`).lacks(`LIST .* INBOX`)
	tc.cmd("a19 LIST \"\" * RETURN (STATUS (MESSAGES))").ok().has(`STATUS INBOX \(MESSAGES 0\)`)
	tc.cmd("a20 CREATE &AOk-t&AOk-").ok()
	tc.cmd("a21 LIST \"\" &AOk-*").ok().has(`LIST .* "/" &AOk-t&AOk-`)
	tc.cmd("a22 ENABLE UTF8=ACCEPT").ok().has("ENABLED UTF8=ACCEPT")
	tc.cmd("a23 LIST \"\" é*").ok().has(`LIST .* "/" "été"`)
}

func TestBadSyntaxGoesOn(t *testing.T) {
	e := newEnv(t, nil)
	tc := e.login()
	for _, c := range []string{"a1 FETCH", "a2 SELECT", "a3 FOO", "a4 STORE 1 FLAGS (", "a5 LIST \"unterminated",
		"a6 SEARCH (((", `a7 LOGIN "x`, "a8 UID", "a9 SELECT INBOX (BOGUS)", "a10 CREATE {3+}\r\nabc extra"} {
		tc.cmd(c).bad()
	}
	tc.send("* NOOP")
	if l := tc.line(); !strings.HasPrefix(l, "* BAD") {
		t.Fatalf("got %q", l)
	}
	tc.cmd("a11 NOOP").ok()
	tc.cmd("long NOOP " + strings.Repeat("x", 100000)).bad().code(`TOOBIG`)
	tc.cmd("a12 NOOP").ok()
}

func TestIdleSeesDelivery(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver("INBOX", msgN(1))
	tc := e.login()
	tc.cmd("a1 SELECT INBOX").ok()
	tc.send("a2 IDLE")
	if l := tc.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("idle continuation %q", l)
	}
	e.deliver("INBOX", msgN(2))
	if l := tc.line(); l != "* 2 EXISTS" {
		t.Fatalf("got %q", l)
	}
	tc.send("DONE")
	tc.read("a2", "IDLE").ok()
}

func TestConcurrentSessionsSeeChanges(t *testing.T) {
	e := newEnv(t, nil)
	for i := 1; i <= 3; i++ {
		e.deliver("INBOX", msgN(i))
	}
	a, b := e.login(), e.login()
	a.cmd("a1 SELECT INBOX").ok()
	b.cmd("b1 SELECT INBOX").ok()
	a.cmd(`a2 STORE 2 +FLAGS (\Deleted)`).ok()
	b.cmd("b2 NOOP").ok().has(`2 FETCH \(UID 2 FLAGS \(\\Deleted\)\)`)
	a.cmd("a3 EXPUNGE").ok().has("2 EXPUNGE")
	// No EXPUNGE while answering FETCH by sequence number (RFC 9051 7.5.1); the message keeps its number.
	b.cmd("b3 FETCH 3 UID").ok().lacks("EXPUNGE").has(`3 FETCH \(UID 3\)`)
	b.cmd("b4 NOOP").ok().has("2 EXPUNGE")
	b.cmd("b5 FETCH 2 UID").ok().has(`2 FETCH \(UID 3\)`)
	e.deliver("INBOX", msgN(4))
	a.cmd("a4 UID FETCH 1:* UID").ok().has("3 EXISTS")
}
