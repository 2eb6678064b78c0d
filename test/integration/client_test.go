//go:build integration

package integration

import (
	"bufio"
	"crypto/tls"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// conn is a transcript-style raw SMTP client: tc.send("EHLO x"); tc.expect(250).
type conn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{t: t, c: c, br: bufio.NewReader(c)}
}

func dialTLS(t *testing.T, addr string) *conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{t: t, c: c, br: bufio.NewReader(c)}
}

// starttls upgrades the connection after a 220 to STARTTLS.
func (tc *conn) starttls() {
	tc.t.Helper()
	tc.send("STARTTLS")
	tc.expect(220)
	tlsConn := tls.Client(tc.c, &tls.Config{InsecureSkipVerify: true})
	if err := tlsConn.Handshake(); err != nil {
		tc.t.Fatalf("TLS handshake: %v", err)
	}
	tc.c = tlsConn
	tc.br = bufio.NewReader(tlsConn)
}

func (tc *conn) send(line string) {
	tc.t.Helper()
	tc.write(line + "\r\n")
}

func (tc *conn) write(raw string) {
	tc.t.Helper()
	_ = tc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := tc.c.Write([]byte(raw)); err != nil {
		tc.t.Fatalf("write %q: %v", raw, err)
	}
}

// reply reads one whole (possibly multi-line) reply and returns its code and lines.
func (tc *conn) reply() (int, []string) {
	tc.t.Helper()
	_ = tc.c.SetReadDeadline(time.Now().Add(15 * time.Second))
	var lines []string
	for {
		l, err := tc.br.ReadString('\n')
		if err != nil {
			tc.t.Fatalf("read reply (after %q): %v", lines, err)
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			break
		}
	}
	code := 0
	for _, ch := range lines[len(lines)-1][:min(3, len(lines[len(lines)-1]))] {
		code = code*10 + int(ch-'0')
	}
	return code, lines
}

// expect reads a reply and fails unless its code is want; it returns the last line.
func (tc *conn) expect(want int) string {
	tc.t.Helper()
	code, lines := tc.reply()
	if code != want {
		tc.t.Fatalf("got %q, want code %d", lines, want)
	}
	return lines[len(lines)-1]
}

// expectMatch reads a reply with code want whose last line matches re.
func (tc *conn) expectMatch(want int, re string) string {
	tc.t.Helper()
	last := tc.expect(want)
	if !regexp.MustCompile(re).MatchString(last) {
		tc.t.Fatalf("reply %q does not match %q", last, re)
	}
	return last
}

// closed reports whether the server closed the connection (EOF) within a few seconds.
func (tc *conn) closed() bool {
	_ = tc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := tc.br.ReadByte()
	return err != nil
}
