//go:build integration

package integration

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// badOrNo reads the completion of tag and fails unless it is BAD or NO; untagged lines before it are returned.
func (ic *imapConn) badOrNo(tag, what string) string {
	ic.t.Helper()
	for {
		l := ic.line()
		if strings.HasPrefix(l, "* BYE") {
			ic.t.Fatalf("%s: server hung up (%q); want BAD or NO and the session going on", what, l)
		}
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" BAD") && !strings.HasPrefix(l, tag+" NO") {
				ic.t.Fatalf("%s: got %q, want %s BAD or NO", what, l, tag)
			}
			return l
		}
	}
}

// TestIMAPBadInput: malformed, oversized and out-of-state commands get a tagged BAD or NO with a reason and the
// session goes on (RFC 9051 7.1.3); nothing panics the server.
func TestIMAPBadInput(t *testing.T) {
	s := newIMAPServer(t, serverOptions{})
	s.addUser("bad@example.test", "bad-secret-1")
	ic := dialIMAPS(t, s.addr(s.ports.IMAPS))
	ic.greeting()

	// Not authenticated: selected- and authenticated-state commands are refused.
	for i, c := range []string{"SELECT INBOX", "FETCH 1 FLAGS", "LIST \"\" *", "APPEND INBOX {3+}\r\nabc", "IDLE",
		"ENABLE IMAP4rev2x"} {
		tag := fmt.Sprintf("n%d", i)
		ic.write(tag + " " + c + "\r\n")
		ic.badOrNo(tag, "before LOGIN: "+c)
	}
	// The refused APPEND's literal was consumed, not read as a command of its own (RFC 7888 4).
	if r := ic.cmd("NOOP").ok(); len(r.untagged) > 0 {
		t.Errorf("untagged lines after the refused commands: %q (a literal read as a command?)", r.untagged)
	}
	ic.login("bad@example.test", "bad-secret-1")

	cases := []struct{ name, raw string }{
		{"unknown command", "FROBNICATE now"},
		{"LOGIN again", `LOGIN "bad@example.test" "bad-secret-1"`},
		{"FETCH without SELECT", "FETCH 1 (FLAGS)"},
		{"STORE without SELECT", `STORE 1 +FLAGS (\Seen)`},
		{"EXPUNGE without SELECT", "EXPUNGE"},
		{"SELECT without a name", "SELECT"},
		{"unbalanced parenthesis", "STATUS INBOX (MESSAGES"},
		{"bad STATUS item", "STATUS INBOX (BOGUS)"},
		{"quoted string with CR", "CREATE \"a\rb\""},
		{"bad sequence set", "UID FETCH 0:x FLAGS"},
		{"nonexistent mailbox", "SELECT nosuchbox"},
		{"8-bit garbage", "\xff\xfe\xfd"},
	}
	for i, c := range cases {
		tag := fmt.Sprintf("b%d", i)
		ic.write(tag + " " + c.raw + "\r\n")
		ic.badOrNo(tag, c.name)
		ic.cmd("NOOP").ok()
	}

	// Selected state: malformed FETCH / SEARCH / STORE.
	ic.cmd("SELECT INBOX").ok()
	for i, c := range []string{"FETCH", "FETCH 1", "FETCH 1 (FLAGS", "FETCH 1 BODY[9.9.9.x]", "SEARCH BOGUSKEY",
		"SEARCH CHARSET NO-SUCH-CHARSET ALL", `STORE 1 FLAGS.NOPE (\Seen)`, "COPY 1", "MOVE"} {
		tag := fmt.Sprintf("s%d", i)
		ic.write(tag + " " + c + "\r\n")
		ic.badOrNo(tag, "selected: "+c)
	}
	ic.cmd("NOOP").ok()

	// An overlong command line: BAD, and the next command is read correctly.
	ic.write("long NOOP " + strings.Repeat("x", 1<<20) + "\r\n")
	ic.badOrNo("long", "a 1 MiB command line")
	ic.cmd("NOOP").ok()

	// A huge synchronizing literal is refused before the client sends it (RFC 7888 / 7889: no continuation).
	ic.write("huge APPEND INBOX {999999999999}\r\n")
	l := ic.line()
	if strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND {999999999999}: the server asked for the literal (%q); it must refuse first", l)
	}
	if !strings.HasPrefix(l, "huge NO") && !strings.HasPrefix(l, "huge BAD") {
		t.Fatalf("APPEND {999999999999}: got %q, want huge NO [TOOBIG] or BAD", l)
	}
	ic.cmd("NOOP").ok()
	ic.cmd("LOGOUT").ok()

	// The server still serves a fresh connection.
	ic2 := dialIMAPS(t, s.addr(s.ports.IMAPS))
	ic2.greeting()
	ic2.login("bad@example.test", "bad-secret-1")
	ic2.cmd("STATUS INBOX (MESSAGES)").ok().has(`MESSAGES 0\)`)
}

// TestIMAPBadInputAuthFlood: a client failing LOGIN over and over is disconnected (issue #3: limits on auth
// failures). The IP lockout itself is auth's business; this checks that the flooding session ends.
func TestIMAPBadInputAuthFlood(t *testing.T) {
	s := newIMAPServer(t, serverOptions{})
	s.addUser("flood@example.test", "flood-secret-1")
	ic := dialIMAPS(t, s.addr(s.ports.IMAPS))
	ic.greeting()
	const attempts = 25
	for i := 0; i < attempts; i++ {
		tag := fmt.Sprintf("f%d", i)
		ic.write(fmt.Sprintf("%s LOGIN flood@example.test wrong-%d\r\n", tag, i))
		for {
			l, err := ic.readLine(30 * time.Second)
			if err != nil {
				if errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "closed") {
					t.Logf("disconnected after %d failed LOGINs", i+1)
					return
				}
				t.Fatalf("after %d failed LOGINs: %v (want a disconnect, not a timeout)", i+1, err)
			}
			if strings.HasPrefix(l, "* BYE") {
				t.Logf("BYE after %d failed LOGINs: %q", i+1, l)
				if _, err := ic.readLine(10 * time.Second); err == nil {
					t.Errorf("connection still open after %q", l)
				}
				return
			}
			if strings.HasPrefix(l, tag+" OK") {
				t.Fatalf("LOGIN with a wrong password accepted: %q", l)
			}
			if strings.HasPrefix(l, tag+" ") {
				break
			}
		}
	}
	t.Fatalf("still connected after %d failed LOGINs; want a disconnect", attempts)
}
