//go:build integration

package integration

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// The security battery (issue #8): the classic open-relay tricks, passwords before TLS, a slowloris and
// oversized input, each against the real binary over TCP.

// TestSecurityOpenRelayTricks: on the MX port without AUTH, no spelling of a remote recipient makes Postern
// relay. Every trick must be refused at RCPT; and should one be accepted, its message is sent anyway so that
// `postern queue list` shows whether it would have left for a remote host.
func TestSecurityOpenRelayTricks(t *testing.T) {
	s := newServer(t, serverOptions{})
	s.addUser("bob@example.test", "bob-secret")
	tricks := []struct{ name, rcpt string }{
		{"plain remote", "<bob@remote.example>"},
		{"percent hack", "<bob%remote.example@example.test>"},
		{"percent hack, two hops", "<bob%remote.example%other.example@example.test>"},
		{"bang path", "<remote.example!bob@example.test>"},
		{"bang path, unqualified", "<remote.example!bob>"},
		{"bang and percent", "<remote.example!bob%other.example@example.test>"},
		{"source route", "<@example.test:bob@remote.example>"},
		{"source route, two hops", "<@example.test,@mail.example.test:bob@remote.example>"},
		{"quoted local part", `<"bob@remote.example"@example.test>`},
		{"quoted percent", `<"bob%remote.example"@example.test>`},
		{"double at", "<bob@remote.example@example.test>"},
		{"IPv4 literal, loopback", "<bob@[127.0.0.1]>"},
		{"IPv4 literal, remote", "<bob@[192.0.2.1]>"},
		{"IPv6 literal, loopback", "<bob@[IPv6:::1]>"},
		{"IPv6 literal, remote", "<bob@[IPv6:2001:db8::1]>"},
		{"trailing dot", "<bob@remote.example.>"},
		{"unqualified", "<bob>"},
		{"unqualified remote-looking", "<remote.example>"},
		{"empty", "<>"},
		{"no brackets", "bob@remote.example"},
		{"local domain as suffix", "<bob@example.test.remote.example>"},
	}
	var accepted []string
	for _, tc := range tricks {
		t.Run(tc.name, func(t *testing.T) {
			c := mxSession(t, s)
			c.send("MAIL FROM:<someone@remote.example>")
			c.expect(250)
			c.send("RCPT TO:" + tc.rcpt)
			code, lines := c.reply()
			transcript := fmt.Sprintf("C: RCPT TO:%s\nS: %s", tc.rcpt, strings.Join(lines, "\nS: "))
			if code >= 200 && code < 300 {
				// The message goes in anyway: the queue check below tells whether it was relayed.
				c.send("DATA")
				if dc, _ := c.reply(); dc == 354 {
					c.write(testMessage("relay "+tc.name, "relay test") + ".\r\n")
					_, dl := c.reply()
					transcript += "\nC: DATA ...\nS: " + strings.Join(dl, "\nS: ")
				}
				accepted = append(accepted, tc.name)
				t.Errorf("relay trick accepted:\n%s", transcript)
				return
			}
			if code < 400 {
				t.Errorf("odd reply to RCPT:\n%s", transcript)
			}
			t.Logf("%s", transcript)
		})
	}
	if q := strings.TrimSpace(s.run("queue", "list")); q != "" {
		t.Errorf("messages queued for remote hosts after the relay tricks (accepted: %v):\n%s", accepted, q)
	}
}

// TestSecurityNoPlaintextPasswords: with auth.allow_plaintext = false (the default) no port takes a password
// before TLS, not even the right one: SMTP (MX and submission), IMAP, POP3 and POP2.
func TestSecurityNoPlaintextPasswords(t *testing.T) {
	s := newPOPServer(t, serverOptions{imap: true})
	s.addUser("bob@example.test", "bob-secret")
	plain := base64.StdEncoding.EncodeToString([]byte("\x00bob@example.test\x00bob-secret"))
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

	for _, port := range []struct {
		name string
		port int
	}{{"MX", s.ports.SMTP}, {"submission", s.ports.Submission}} {
		t.Run("SMTP "+port.name, func(t *testing.T) {
			c := dial(t, s.addr(port.port))
			c.expect(220)
			c.send("EHLO client.test")
			_, ehlo := c.reply()
			for _, l := range ehlo {
				if strings.Contains(strings.ToUpper(l), "AUTH") {
					t.Errorf("AUTH offered before TLS: %q", l)
				}
			}
			for _, try := range [][]string{
				{"AUTH PLAIN " + plain},
				{"AUTH LOGIN", b64("bob@example.test"), b64("bob-secret")},
				{"AUTH PLAIN", plain},
			} {
				code := 0
				for _, line := range try {
					c.send(line)
					if code, _ = c.reply(); code != 334 {
						break
					}
				}
				if code == 235 || code/100 != 5 {
					t.Errorf("%q before TLS: reply %d, want 5xx", try[0], code)
				}
			}
			if port.port == s.ports.Submission {
				// RFC 6409 4.3 (AUTH required) and no password in clear: nothing can be sent.
				c.send("MAIL FROM:<bob@example.test>")
				if code, l := c.reply(); code/100 != 5 {
					t.Errorf("MAIL without AUTH on submission: %q", l)
				}
			}
		})
	}
	t.Run("IMAP", func(t *testing.T) {
		ic := dialIMAP(t, s.addr(s.ports.IMAP))
		ic.greeting()
		ic.cmd("CAPABILITY").has(`LOGINDISABLED`)
		for _, cmd := range []string{
			`LOGIN "bob@example.test" "bob-secret"`,
			"AUTHENTICATE PLAIN " + plain,
			`LOGIN {16+}` + "\r\nbob@example.test" + ` "bob-secret"`,
		} {
			if r := ic.cmd(cmd); r.status == "OK" {
				t.Errorf("%.40q before TLS: %q", cmd, r.tagged)
			}
		}
		ic.cmd("SELECT INBOX").expect("BAD") // still not authenticated
	})
	t.Run("POP3", func(t *testing.T) {
		pc := dialPOP(t, s.addr(s.ports.POP3))
		pc.ok()
		for _, cmd := range []string{"USER bob@example.test", "PASS bob-secret", "AUTH PLAIN " + plain, "APOP bob@example.test 0123456789abcdef0123456789abcdef"} {
			if l := pc.cmd(cmd).line(); !strings.HasPrefix(l, "-ERR") {
				t.Errorf("%q before TLS: %q", cmd, l)
			}
		}
		if l := pc.cmd("STAT").line(); !strings.HasPrefix(l, "-ERR") {
			t.Errorf("STAT unauthenticated: %q", l)
		}
	})
	t.Run("POP2", func(t *testing.T) {
		// RFC 937 has no TLS at all: POP2 takes passwords only with allow_plaintext, and says so at once.
		p2 := dialPOP(t, s.addr(s.ports.POP2))
		greeting := p2.line()
		if strings.HasPrefix(greeting, "+") {
			p2.cmd("HELO bob@example.test bob-secret")
			if l := p2.line(); !strings.HasPrefix(l, "-") {
				t.Errorf("POP2 HELO with a password in clear: %q", l)
			}
		}
	})
}

// rss returns the resident set size of a process in bytes, from /proc/PID/status.
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

const mib = 1 << 20

// TestSecuritySlowloris: 1,000 idle connections (from 50 loopback addresses, each at the per-IP limit of 20) do
// not keep a real client from delivering a message over SMTP and reading it back over IMAPS.
func TestSecuritySlowloris(t *testing.T) {
	t.Run("spread over MX and IMAPS", func(t *testing.T) {
		s := newServer(t, serverOptions{imap: true})
		slowloris(t, s, []int{s.ports.SMTP, s.ports.IMAPS})
	})
	t.Run("all on MX", func(t *testing.T) {
		// 1,000 idle connections fill smtp.max_connections (1000): the real client gets the slot of the session idle
		// the longest (internal/connserver, Idler).
		s := newServer(t, serverOptions{imap: true})
		slowloris(t, s, []int{s.ports.SMTP})
	})
}

func slowloris(t *testing.T, s *server, targets []int) {
	t.Helper()
	s.addUser("bob@example.test", "bob-secret")
	before := rss(t, s.cmd.Process.Pid)
	const total, ips = 1000, 50
	var (
		mu     sync.Mutex
		conns  []net.Conn
		failed []string
		wg     sync.WaitGroup
	)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range total {
		wg.Go(func() {
			src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%ips))}
			port := targets[i%len(targets)]
			d := net.Dialer{LocalAddr: src, Timeout: 10 * time.Second}
			c, err := d.Dial("tcp", s.addr(port))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, err.Error())
				return
			}
			conns = append(conns, c)
			if port == s.ports.SMTP {
				c.Write([]byte("EHL")) // half a command, then nothing
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d idle connections failed, e.g. %s", len(failed), total, failed[0])
	}
	// Every idle SMTP connection has its session (the greeting proves it) before the real client comes.
	for _, c := range conns {
		if c.RemoteAddr().(*net.TCPAddr).Port != s.ports.SMTP {
			continue
		}
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		if l, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(l, "220") {
			t.Fatalf("idle connection %s: greeting %q, %v", c.LocalAddr(), l, err)
		}
	}
	during := rss(t, s.cmd.Process.Pid)
	t.Logf("RSS %d MiB before, %d MiB with %d idle connections (%.1f KiB each)", before/mib, during/mib, total,
		float64(during-before)/total/1024)

	// A full server makes room by ending a session idle for a while (connserver's minEvictIdle), not one that
	// has just said hello: let the slowloris be idle that long.
	time.Sleep(2500 * time.Millisecond)
	if err := sendPlain(s.addr(s.ports.SMTP), "alice@remote.example", "bob@example.test", testMessage("through", "served")); err != nil {
		t.Fatalf("a real client is not served during the slowloris: %v", err)
	}
	c, err := imapclient.DialTLS(s.addr(s.ports.IMAPS), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatalf("IMAPS during the slowloris: %v", err)
	}
	defer c.Close()
	if err := c.Login("bob@example.test", "bob-secret").Wait(); err != nil {
		t.Fatalf("LOGIN during the slowloris: %v", err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 1 {
		t.Fatalf("SELECT INBOX during the slowloris: %v, %v", err, sel)
	}
}

// TestSecurityOversizedInput: over-long command lines, a huge SMTP message and huge IMAP literals are refused
// without the server's memory growing with them (a resource bound, generous on purpose: 200 MiB).
func TestSecurityOversizedInput(t *testing.T) {
	s := newPOPServer(t, serverOptions{imap: true})
	s.addUser("bob@example.test", "bob-secret")
	pid := s.cmd.Process.Pid
	before := rss(t, pid)
	long := strings.Repeat("A", 64<<10)
	refusedWith := func(t *testing.T, what, got string, prefixes ...string) {
		t.Helper()
		t.Logf("%s: server answered %q", what, got)
		if strings.HasPrefix(got, "(closed") {
			return // closing is a refusal too
		}
		for _, p := range prefixes {
			if strings.HasPrefix(got, p) {
				return
			}
		}
		t.Errorf("%s: answer %q, want one of %q or a closed connection", what, got, prefixes)
	}
	step := func(name string) {
		t.Logf("RSS after %s: %d MiB", name, rss(t, pid)/mib)
	}

	t.Run("SMTP command line of 32 MiB", func(t *testing.T) {
		c := mxSession(t, s)
		refusedWith(t, "32 MiB MAIL line", streamUntilRefused(t, c.c, "MAIL FROM:<", long, 32*mib, ">\r\n"), "500", "501")
		step("SMTP line")
	})
	t.Run("SMTP message of 256 MiB", func(t *testing.T) {
		c := mxSession(t, s)
		c.send("MAIL FROM:<someone@remote.example>")
		c.expect(250)
		c.send("RCPT TO:<bob@example.test>")
		c.expect(250)
		c.send("DATA")
		c.expect(354)
		body := strings.Repeat(strings.Repeat("x", 998)+"\r\n", 64)
		refusedWith(t, "256 MiB message, 1 MiB limit", streamUntilRefused(t, c.c, "Subject: big\r\n\r\n", body, 256*mib, ".\r\n"), "552")
		step("SMTP message")
	})
	t.Run("SMTP message line of 64 MiB", func(t *testing.T) {
		c := mxSession(t, s)
		c.send("MAIL FROM:<someone@remote.example>")
		c.expect(250)
		c.send("RCPT TO:<bob@example.test>")
		c.expect(250)
		c.send("DATA")
		c.expect(354)
		// RFC 5321 4.5.3.1.6: a text line is at most 1000 octets; one line of 64 MiB must not be kept whole.
		refusedWith(t, "64 MiB line in DATA", streamUntilRefused(t, c.c, "Subject: long line\r\n\r\n", long, 64*mib, "\r\n.\r\n"), "552", "500", "554")
		step("SMTP DATA line")
	})
	t.Run("IMAP literal of 2 GB before login", func(t *testing.T) {
		ic := dialIMAP(t, s.addr(s.ports.IMAP))
		ic.greeting()
		ic.write("a1 LOGIN {2000000000}\r\n")
		if l := ic.line(); !strings.HasPrefix(l, "a1 NO") && !strings.HasPrefix(l, "a1 BAD") && !strings.HasPrefix(l, "* BYE") {
			t.Errorf("2 GB synchronizing literal before login: %q", l)
		}
	})
	t.Run("IMAP APPEND literals of 2 GB and 300 MB", func(t *testing.T) {
		ic := dialIMAPS(t, s.addr(s.ports.IMAPS))
		ic.greeting()
		ic.login("bob@example.test", "bob-secret")
		ic.write("a1 APPEND INBOX {2000000000}\r\n")
		if l := ic.line(); !strings.HasPrefix(l, "a1 NO") && !strings.HasPrefix(l, "a1 BAD") {
			t.Errorf("2 GB APPEND literal: %q, want a tagged NO before any continuation", l)
		}
		// A non-synchronizing literal cannot be refused before it is sent (RFC 7888 4): the server must cut it or
		// read it without keeping it.
		refusedWith(t, "300 MB LITERAL+", streamUntilRefused(t, ic.c, "a2 APPEND INBOX {300000000+}\r\n", long, 256*mib, "\r\n"),
			"a2 NO", "a2 BAD", "* BYE")
		step("IMAP literals")
	})
	t.Run("IMAP command line of 32 MiB", func(t *testing.T) {
		ic := dialIMAPS(t, s.addr(s.ports.IMAPS))
		ic.greeting()
		refusedWith(t, "32 MiB IMAP line", streamUntilRefused(t, ic.c, "a1 NOOP ", long, 32*mib, "\r\n"), "a1 BAD", "* BAD", "* BYE")
		step("IMAP line")
	})
	t.Run("POP3 command line of 32 MiB", func(t *testing.T) {
		pc := dialPOPS(t, s.addr(s.ports.POP3S))
		pc.ok()
		refusedWith(t, "32 MiB POP3 line", streamUntilRefused(t, pc.c, "USER ", long, 32*mib, "\r\n"), "-ERR")
		step("POP3 line")
	})
	after := rss(t, pid)
	t.Logf("RSS %d MiB before, %d MiB after", before/mib, after/mib)
	if after-before > 200*mib {
		t.Errorf("the server grew by %d MiB on oversized input (bound 200 MiB)", (after-before)/mib)
	}
	// The server is still fine: a normal message goes through.
	if err := sendPlain(s.addr(s.ports.SMTP), "alice@remote.example", "bob@example.test", testMessage("after", "ok")); err != nil {
		t.Fatalf("after the oversized input: %v", err)
	}
}

// streamUntilRefused writes prefix, then chunk repeatedly up to limit bytes, then end, while reading what the
// server says. It returns the first line the server sent (or "(closed)"), as soon as there is one: when the server
// answers before the end it stops writing. "" means the server said nothing within a minute of the end (it may
// still be discarding). Nothing here decides on timing: the minute only bounds a hang.
func streamUntilRefused(t *testing.T, c net.Conn, prefix, chunk string, limit int, end string) string {
	t.Helper()
	answer := make(chan string, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(3 * time.Minute))
		l, err := bufio.NewReader(c).ReadString('\n')
		var ne net.Error
		switch {
		case err == nil || l != "":
		case errors.As(err, &ne) && ne.Timeout():
			l = "(no answer)"
		default:
			l = "(closed: " + err.Error() + ")"
		}
		answer <- strings.TrimRight(l, "\r\n")
	}()
	c.SetWriteDeadline(time.Now().Add(2 * time.Minute))
	if _, err := io.WriteString(c, prefix); err != nil {
		return <-answer
	}
	for n := len(prefix); n < limit; n += len(chunk) {
		select {
		case a := <-answer:
			return a
		default:
		}
		if _, err := io.WriteString(c, chunk); err != nil {
			return <-answer // the server closed or reset: its last word, if any
		}
	}
	if _, err := io.WriteString(c, end); err != nil {
		return <-answer
	}
	select {
	case a := <-answer:
		return a
	case <-time.After(time.Minute):
		return ""
	}
}
