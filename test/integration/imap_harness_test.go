//go:build integration

package integration

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// newIMAPServer starts postern with the IMAP (STARTTLS) and IMAPS listeners open (serverOptions.imap). When the
// binary does not listen on them, IMAP is not wired in yet: the test skips with a clear message. A listener that
// is configured but silent is never a reason to skip.
func newIMAPServer(t *testing.T, o serverOptions) *server {
	t.Helper()
	o.imap = true
	s := newServer(t, o)
	requireIMAP(t, s)
	return s
}

// requireIMAP skips the test when nothing listens on the configured IMAP port (the IMAP server is not wired into
// the binary yet); once something accepts connections every failure is real.
func requireIMAP(t *testing.T, s *server) {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.addr(s.ports.IMAP), 2*time.Second)
	if err != nil {
		t.Skipf("IMAP is not wired into the postern binary yet: listen.imap = 127.0.0.1:%d is configured but "+
			"nothing listens (%v)", s.ports.IMAP, err)
	}
	c.Close()
}

// setAuthLockout rewrites [auth] lockout_failures in the config and restarts the server. The James replay needs a
// high threshold: its scripts fail logins on purpose, all from 127.0.0.1.
func (s *server) setAuthLockout(failures int) {
	s.t.Helper()
	b, err := os.ReadFile(s.config)
	if err != nil {
		s.t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^lockout_failures = \d+$`)
	if !re.Match(b) {
		s.t.Fatalf("config has no lockout_failures line:\n%s", b)
	}
	b = re.ReplaceAll(b, []byte(fmt.Sprintf("lockout_failures = %d", failures)))
	s.stop()
	if err := os.WriteFile(s.config, b, 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.start()
}

// imapConn is a raw IMAP client for transcript-style tests: ic.cmd("SELECT INBOX").ok().
type imapConn struct {
	t   *testing.T
	c   net.Conn
	br  *bufio.Reader
	tag int
}

func dialIMAP(t *testing.T, addr string) *imapConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &imapConn{t: t, c: c, br: bufio.NewReader(c)}
}

func dialIMAPS(t *testing.T, addr string) *imapConn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("IMAPS handshake with %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &imapConn{t: t, c: c, br: bufio.NewReader(c)}
}

// greeting reads the server greeting and fails unless it is an untagged OK (RFC 9051 7.1.1).
func (ic *imapConn) greeting() string {
	ic.t.Helper()
	l := ic.line()
	if !strings.HasPrefix(l, "* OK") {
		ic.t.Fatalf("greeting %q: want * OK", l)
	}
	return l
}

// starttls sends STARTTLS and upgrades the connection (RFC 9051 6.2.1).
func (ic *imapConn) starttls() {
	ic.t.Helper()
	ic.cmd("STARTTLS").ok()
	tc := tls.Client(ic.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		ic.t.Fatalf("STARTTLS handshake: %v", err)
	}
	ic.c, ic.br = tc, bufio.NewReader(tc)
}

func (ic *imapConn) write(raw string) {
	ic.t.Helper()
	_ = ic.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := ic.c.Write([]byte(raw)); err != nil {
		ic.t.Fatalf("write %.80q: %v", raw, err)
	}
}

// line reads one response line; a literal announced at its end ({n}) is read and appended with the text after
// it, so a FETCH with BODY[] comes back as one string.
func (ic *imapConn) line() string {
	ic.t.Helper()
	l, err := ic.readLine(15 * time.Second)
	if err != nil {
		ic.t.Fatalf("read response: %v", err)
	}
	return l
}

var literalAtEnd = regexp.MustCompile(`\{(\d+)\}$`)

func (ic *imapConn) readLine(timeout time.Duration) (string, error) {
	_ = ic.c.SetReadDeadline(time.Now().Add(timeout))
	var b strings.Builder
	for {
		l, err := ic.br.ReadString('\n')
		if err != nil {
			return b.String() + l, err
		}
		l = strings.TrimSuffix(strings.TrimSuffix(l, "\n"), "\r")
		b.WriteString(l)
		m := literalAtEnd.FindStringSubmatch(l)
		if m == nil {
			return b.String(), nil
		}
		n, _ := strconv.Atoi(m[1])
		buf := make([]byte, n)
		if _, err := io.ReadFull(ic.br, buf); err != nil {
			return b.String(), err
		}
		b.WriteString("\r\n")
		b.Write(buf)
	}
}

// imapResp is the answer to one command: its untagged lines and the tagged completion.
type imapResp struct {
	ic       *imapConn
	command  string
	untagged []string
	tagged   string // "tag OK ..." etc.
	status   string // OK, NO or BAD
}

// cmd sends "tag command" and reads until the tagged completion.
func (ic *imapConn) cmd(command string) *imapResp {
	ic.t.Helper()
	ic.tag++
	tag := fmt.Sprintf("t%d", ic.tag)
	ic.write(tag + " " + command + "\r\n")
	return ic.readUntilTagged(tag, command)
}

func (ic *imapConn) readUntilTagged(tag, command string) *imapResp {
	ic.t.Helper()
	r := &imapResp{ic: ic, command: command}
	for {
		l := ic.line()
		if strings.HasPrefix(l, tag+" ") {
			r.tagged = l
			if f := strings.Fields(l); len(f) > 1 {
				r.status = strings.ToUpper(f[1])
			}
			return r
		}
		r.untagged = append(r.untagged, l)
	}
}

func (r *imapResp) expect(status string) *imapResp {
	r.ic.t.Helper()
	if r.status != status {
		r.ic.t.Fatalf("%.120q: got %q (untagged %q), want %s", r.command, r.tagged, r.untagged, status)
	}
	return r
}

func (r *imapResp) ok() *imapResp { r.ic.t.Helper(); return r.expect("OK") }

// has fails unless some untagged line matches re.
func (r *imapResp) has(re string) string {
	r.ic.t.Helper()
	rx := regexp.MustCompile(re)
	for _, l := range r.untagged {
		if rx.MatchString(l) {
			return l
		}
	}
	r.ic.t.Fatalf("%.120q: no untagged line matches %q in %q (tagged %q)", r.command, re, r.untagged, r.tagged)
	return ""
}

// login authenticates with LOGIN and a quoted username and password.
func (ic *imapConn) login(user, pass string) {
	ic.t.Helper()
	ic.cmd(fmt.Sprintf("LOGIN %s %s", imapQuote(user), imapQuote(pass))).ok()
}

func imapQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// smtpDeliver delivers one message to rcpt through the MX port and fails unless it is accepted.
func smtpDeliver(t *testing.T, s *server, from, rcpt, msg string) {
	t.Helper()
	if err := sendPlain(s.addr(s.ports.SMTP), from, rcpt, msg); err != nil {
		t.Fatalf("deliver to %s over SMTP: %v", rcpt, err)
	}
}

// testMessage is a small RFC 5322 message with CRLF line ends.
func testMessage(subject, body string) string {
	return strings.ReplaceAll(fmt.Sprintf("From: Sender <sender@remote.example>\nTo: someone@example.test\n"+
		"Subject: %s\nDate: Mon, 7 Feb 1994 21:52:25 -0800\nMessage-ID: <%s@remote.example>\n\n%s\n",
		subject, strings.ReplaceAll(subject, " ", "."), body), "\n", "\r\n")
}
