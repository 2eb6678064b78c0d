//go:build integration

package integration

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// pop2Expect reads a POP2 reply line that starts with want.
func pop2Expect(t *testing.T, pc *popConn, want string) string {
	t.Helper()
	l := pc.line()
	if !strings.HasPrefix(l, want) {
		t.Fatalf("POP2: got %q, want a line starting with %q", l, want)
	}
	return l
}

// TestPOP2Transcript is an RFC 937 session against the real binary (no POP2 client is packaged any more:
// fetchmail dropped POP2 in 6.4): HELO, READ, RETR of exactly the announced octets, ACKS, ACKD, QUIT. The
// message sizes agree with POP3's LIST, ACKD deletes only at QUIT, and POP2 and POP3 share the maildrop lock.
func TestPOP2Transcript(t *testing.T) {
	s := newPOPServer(t, serverOptions{allowPlaintext: true})
	s.addUser("alice@example.test", "alice-secret")
	for i := range 2 {
		smtpDeliver(t, s, "a@remote.example", "alice@example.test", popMessage(fmt.Sprintf("pop2 %d", i)))
	}
	pc := dialPOP(t, s.addr(s.ports.POP3))
	pc.ok()
	pc.cmd("USER alice@example.test").ok()
	pc.cmd("PASS alice-secret").ok()
	list := pc.cmd("LIST").multi()
	pc.cmd("QUIT").ok()

	p2 := dialPOP(t, s.addr(s.ports.POP2))
	pop2Expect(t, p2, "+ POP2 mail.example.test")
	p2.cmd("HELO alice@example.test alice-secret")
	pop2Expect(t, p2, "#2 messages in INBOX")

	// The maildrop is locked for POP3 while POP2 holds it.
	other := dialPOPS(t, s.addr(s.ports.POP3S))
	other.ok()
	other.cmd("AUTH PLAIN " + plain("alice@example.test", "alice-secret")).err("[IN-USE]")

	for i, ack := range []string{"ACKS", "ACKD"} {
		var size int
		p2.cmd("READ " + fmt.Sprint(i+1))
		l := pop2Expect(t, p2, "=")
		fmt.Sscanf(l, "=%d", &size)
		if want := fmt.Sprintf("%d %d", i+1, size); list[i] != want {
			t.Errorf("POP2 READ %d announced %d octets; POP3 LIST says %q", i+1, size, list[i])
		}
		p2.cmd("RETR")
		_ = p2.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		body := make([]byte, size)
		if _, err := io.ReadFull(p2.br, body); err != nil {
			t.Fatalf("RETR %d: %v", i+1, err)
		}
		if !strings.Contains(string(body), fmt.Sprintf("Subject: pop2 %d\r\n", i)) ||
			!strings.Contains(string(body), "\r\n.hidden line\r\n") || !strings.HasSuffix(string(body), "last line\r\n") {
			t.Errorf("message %d as received over POP2:\n%s", i+1, body)
		}
		p2.cmd(ack)
		if i == 0 {
			pop2Expect(t, p2, "=") // ACKS announces the next message
		} else {
			pop2Expect(t, p2, "=0 No more messages")
		}
	}
	p2.cmd("READ 2")
	pop2Expect(t, p2, "=0 Message 2 deleted")
	p2.cmd("NOPE")
	pop2Expect(t, p2, "- Unknown command")
	s.waitInbox("alice@example.test", 2) // ACKD takes effect at QUIT
	p2.cmd("QUIT")
	pop2Expect(t, p2, "+ ")
	s.waitInbox("alice@example.test", 1)

	p2 = dialPOP(t, s.addr(s.ports.POP2))
	pop2Expect(t, p2, "+ POP2")
	p2.cmd("HELO alice@example.test wrong")
	pop2Expect(t, p2, "- Bad login")
}

// TestPOP2RefusedWithoutPlaintext: with the default auth.allow_plaintext = false, the plain POP2 listener
// refuses in its greeting, before the client can send a password.
func TestPOP2RefusedWithoutPlaintext(t *testing.T) {
	s := newPOPServer(t, serverOptions{})
	p2 := dialPOP(t, s.addr(s.ports.POP2))
	pop2Expect(t, p2, "- POP2 unavailable")
	_ = p2.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := p2.br.ReadByte(); err == nil {
		t.Error("connection open after the refusal")
	}
}
