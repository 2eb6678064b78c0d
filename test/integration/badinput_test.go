//go:build integration

package integration

import (
	"strings"
	"testing"
	"time"
)

func mxSession(t *testing.T, s *server) *conn {
	t.Helper()
	tc := dial(t, s.addr(s.ports.SMTP))
	tc.expect(220)
	tc.send("EHLO client.test")
	tc.expect(250)
	return tc
}

// TestBadInput: each kind of bad input gets the right reply and the session goes on (or closes cleanly),
// and nothing half-written is delivered.
func TestBadInput(t *testing.T) {
	s := newServer(t, serverOptions{smtpExtra: "max_recipients = 3\nmax_errors = 8\nmax_connections_per_ip = 4"})
	s.addUser("bob@example.test", "bob-secret")

	t.Run("long line", func(t *testing.T) {
		tc := mxSession(t, s)
		tc.send("MAIL FROM:<" + strings.Repeat("a", 1100) + "@remote.example>")
		if code, l := tc.reply(); code != 500 && code != 501 {
			t.Fatalf("line over 1000 octets: %q", l)
		}
		tc.send("NOOP")
		tc.expect(250)
	})
	t.Run("unknown command and sequence", func(t *testing.T) {
		tc := mxSession(t, s)
		tc.send("FROBNICATE now")
		tc.expectMatch(500, `5\.5\.`)
		tc.send("RCPT TO:<bob@example.test>")
		tc.expectMatch(503, `5\.5\.1`)
		tc.send("DATA")
		tc.expectMatch(503, `5\.5\.1`)
		tc.send("MAIL FROM:<not an address>")
		if code, l := tc.reply(); code != 501 && code != 553 {
			t.Fatalf("bad sender: %q", l)
		}
		tc.send("MAIL FROM:<a@remote.example>")
		tc.expect(250)
		tc.send("RCPT TO:<bob@@example.test>")
		if code, l := tc.reply(); code != 501 && code != 553 {
			t.Fatalf("bad recipient: %q", l)
		}
		tc.send("QUIT")
		tc.expect(221)
	})
	t.Run("too many recipients", func(t *testing.T) {
		tc := mxSession(t, s)
		tc.send("MAIL FROM:<a@remote.example>")
		tc.expect(250)
		for i := 0; i < 3; i++ {
			tc.send("RCPT TO:<bob@example.test>")
			tc.expect(250)
		}
		tc.send("RCPT TO:<bob@example.test>")
		tc.expectMatch(452, `4\.5\.3`)
	})
	t.Run("size", func(t *testing.T) {
		tc := mxSession(t, s)
		tc.send("MAIL FROM:<a@remote.example> SIZE=5000000")
		tc.expectMatch(552, `5\.3\.4`)
		tc.send("MAIL FROM:<a@remote.example>")
		tc.expect(250)
		tc.send("RCPT TO:<bob@example.test>")
		tc.expect(250)
		tc.send("DATA")
		tc.expect(354)
		line := strings.Repeat("x", 998) + "\r\n"
		for n := 0; n < (1<<20)/len(line)+10; n++ {
			tc.write(line)
		}
		tc.write(".\r\n")
		tc.expectMatch(552, `5\.3\.4`)
	})
	t.Run("bare LF", func(t *testing.T) {
		tc := mxSession(t, s)
		tc.send("MAIL FROM:<a@remote.example>")
		tc.expect(250)
		tc.send("RCPT TO:<bob@example.test>")
		tc.expect(250)
		tc.send("DATA")
		tc.expect(354)
		tc.write("Subject: smuggle\r\n\r\nbody\n.\nMAIL FROM:<x@y.z>\n.\r\n")
		if code, l := tc.reply(); code < 500 {
			t.Fatalf("bare LF accepted: %q", l)
		}
	})
	t.Run("disconnect mid-DATA", func(t *testing.T) {
		tc := mxSession(t, s)
		tc.send("MAIL FROM:<a@remote.example>")
		tc.expect(250)
		tc.send("RCPT TO:<bob@example.test>")
		tc.expect(250)
		tc.send("DATA")
		tc.expect(354)
		tc.write("Subject: half\r\n\r\nthis message never ends\r\n")
		tc.c.Close()
	})
	t.Run("too many errors", func(t *testing.T) {
		tc := mxSession(t, s)
		for i := 0; i < 10; i++ {
			tc.send("BOGUS")
			code, _ := tc.reply()
			if code == 421 {
				if !tc.closed() {
					t.Fatal("421 without closing")
				}
				return
			}
		}
		t.Fatal("no 421 after 10 bad commands with max_errors = 8")
	})
	t.Run("connection flood", func(t *testing.T) {
		var held []*conn
		for i := 0; i < 4; i++ {
			tc := dial(t, s.addr(s.ports.SMTP))
			tc.expect(220)
			held = append(held, tc)
		}
		tc := dial(t, s.addr(s.ports.SMTP))
		tc.expectMatch(421, `4\.7\.0`)
		for _, h := range held {
			h.c.Close()
		}
		time.Sleep(300 * time.Millisecond)
		tc = dial(t, s.addr(s.ports.SMTP))
		tc.expect(220)
	})
	// Nothing above may have delivered anything.
	time.Sleep(200 * time.Millisecond)
	s.waitInbox("bob@example.test", 0)
}

// TestLockout: repeated wrong passwords lock the client IP out, even for the right password.
func TestLockout(t *testing.T) {
	s := newServer(t, serverOptions{allowPlaintext: true})
	s.addUser("alice@example.test", "alice-secret")
	tc := dial(t, s.addr(s.ports.Submission))
	tc.expect(220)
	tc.send("EHLO c")
	tc.expect(250)
	for i := 0; i < 5; i++ {
		tc.send("AUTH PLAIN " + plain("alice@example.test", "wrong"))
		code, l := tc.reply()
		if code == 421 {
			tc = dial(t, s.addr(s.ports.Submission))
			tc.expect(220)
			tc.send("EHLO c")
			tc.expect(250)
			continue
		}
		if code != 535 {
			t.Fatalf("wrong password: %q", l)
		}
	}
	tc.send("AUTH PLAIN " + plain("alice@example.test", "alice-secret"))
	if code, l := tc.reply(); code == 235 {
		t.Fatalf("locked-out IP authenticated: %q", l)
	}
}

// TestQuota: a delivery over the user's quota is refused with 552 5.2.2 and not stored.
func TestQuota(t *testing.T) {
	s := newServer(t, serverOptions{})
	if out, err := s.runErr("pw-quota-1\n", "user", "add", "small@example.test", "--password-stdin", "--quota", "2KiB"); err != nil {
		t.Fatalf("user add --quota: %v\n%s", err, out)
	}
	tc := mxSession(t, s)
	tc.send("MAIL FROM:<a@remote.example>")
	tc.expect(250)
	tc.send("RCPT TO:<small@example.test>")
	tc.expect(250)
	tc.send("DATA")
	tc.expect(354)
	tc.write("Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 200) + ".\r\n")
	tc.expectMatch(552, `5\.2\.2`)
	s.waitInbox("small@example.test", 0)
}
