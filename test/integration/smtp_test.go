//go:build integration

package integration

import (
	"encoding/base64"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func swaks(t *testing.T, args ...string) (string, error) {
	t.Helper()
	needTool(t, "swaks")
	out, err := exec.Command("swaks", append([]string{"--timeout", "20"}, args...)...).CombinedOutput()
	return string(out), err
}

func python(t *testing.T, script string, args ...string) (string, error) {
	t.Helper()
	needTool(t, "python3")
	out, err := exec.Command("python3", append([]string{"-c", script}, args...)...).CombinedOutput()
	return string(out), err
}

// TestSubmissionWithSwaks: STARTTLS + AUTH on 587 and implicit TLS on 465, with PLAIN and LOGIN, deliver locally.
func TestSubmissionWithSwaks(t *testing.T) {
	s := newServer(t, serverOptions{})
	s.addUser("alice@example.test", "alice-secret")
	s.addUser("bob@example.test", "bob-secret")
	for i, c := range []struct {
		name string
		args []string
	}{
		{"587 STARTTLS PLAIN", []string{"--server", s.addr(s.ports.Submission), "--tls", "--auth", "PLAIN"}},
		{"587 STARTTLS LOGIN", []string{"--server", s.addr(s.ports.Submission), "--tls", "--auth", "LOGIN"}},
		{"465 implicit TLS PLAIN", []string{"--server", s.addr(s.ports.Submissions), "--tls-on-connect", "--auth", "PLAIN"}},
		{"25 STARTTLS AUTH relay", []string{"--server", s.addr(s.ports.SMTP), "--tls", "--auth", "LOGIN"}},
	} {
		out, err := swaks(t, append(c.args, "--auth-user", "alice@example.test", "--auth-password", "alice-secret",
			"--from", "alice@example.test", "--to", "bob@example.test", "--h-Subject", c.name)...)
		if err != nil {
			t.Fatalf("%s: swaks: %v\n%s", c.name, err, out)
		}
		if !strings.Contains(out, "250 2.0.0") {
			t.Fatalf("%s: no 250 2.0.0 in\n%s", c.name, out)
		}
		s.waitInbox("bob@example.test", int64(i+1))
	}
	log := s.mailLog()
	for _, want := range []string{"received", "delivered", "to=<bob@example.test>"} {
		if !strings.Contains(log, want) {
			t.Errorf("mail log lacks %q:\n%s", want, log)
		}
	}
}

// TestSubmissionPolicy: no AUTH before TLS, AUTH before MAIL, only one's own addresses.
func TestSubmissionPolicy(t *testing.T) {
	s := newServer(t, serverOptions{})
	s.addUser("alice@example.test", "alice-secret")
	s.addUser("bob@example.test", "bob-secret")
	s.run("alias", "add", "sales@example.test", "alice@example.test", "bob@example.test")
	tc := dial(t, s.addr(s.ports.Submission))
	tc.expect(220)
	tc.send("EHLO client.test")
	_, lines := tc.reply()
	if strings.Contains(strings.Join(lines, "\n"), "AUTH") {
		t.Fatalf("AUTH offered before TLS: %q", lines)
	}
	tc.send("AUTH PLAIN " + plain("alice@example.test", "alice-secret"))
	if code, l := tc.reply(); code != 538 && code != 530 {
		t.Fatalf("AUTH before TLS: got %q, want 538 or 530", l)
	}
	tc.send("MAIL FROM:<alice@example.test>")
	tc.expectMatch(530, `5\.7\.0`)
	tc.starttls()
	tc.send("EHLO client.test")
	_, lines = tc.reply()
	if !strings.Contains(strings.Join(lines, "\n"), "AUTH") {
		t.Fatalf("AUTH not offered after TLS: %q", lines)
	}
	tc.send("MAIL FROM:<alice@example.test>")
	tc.expect(530)
	tc.send("AUTH PLAIN " + plain("alice@example.test", "wrong"))
	tc.expectMatch(535, `5\.7\.8`)
	tc.send("AUTH PLAIN " + plain("alice@example.test", "alice-secret"))
	tc.expectMatch(235, `2\.7\.0`)
	tc.send("MAIL FROM:<bob@example.test>")
	tc.expectMatch(553, `5\.7\.1`)
	tc.send("MAIL FROM:<sales@example.test>") // an alias that includes alice
	tc.expect(250)
	tc.send("RCPT TO:<someone@remote.example>")
	tc.expect(250)
	tc.send("DATA")
	tc.expect(354)
	tc.write("From: Bob <bob@example.test>\r\nSubject: forged\r\n\r\nhello\r\n.\r\n")
	tc.expectMatch(553, `5\.7\.1`)
	tc.send("MAIL FROM:<alice@example.test>")
	tc.expect(250)
	tc.send("RCPT TO:<someone@remote.example>")
	tc.expect(250)
	tc.send("RCPT TO:<bob@example.test>")
	tc.expect(250)
	tc.send("DATA")
	tc.expect(354)
	tc.write("From: Alice <alice@example.test>\r\nSubject: ok\r\n\r\nhello\r\n.\r\n")
	last := tc.expectMatch(250, `2\.0\.0`)
	s.waitInbox("bob@example.test", 1)
	q := s.run("queue", "list")
	if !strings.Contains(q, "someone@remote.example") {
		t.Fatalf("queue list lacks the remote recipient:\n%s\n(250 was %q)", q, last)
	}
}

func plain(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestMXWithPythonSmtplib: the MX accepts local mail, rejects unknown users and relaying.
func TestMXWithPythonSmtplib(t *testing.T) {
	s := newServer(t, serverOptions{})
	s.addUser("bob@example.test", "bob-secret")
	script := `
import smtplib, ssl, sys
port = int(sys.argv[1])
s = smtplib.SMTP("127.0.0.1", port, timeout=20)
code, msg = s.ehlo("client.test")
assert code == 250, (code, msg)
assert s.has_extn("starttls"), msg
assert not s.has_extn("auth"), "AUTH offered before TLS: %r" % msg
for ext in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking", "dsn"):
    assert s.has_extn(ext), "missing %s in %r" % (ext, msg)
s.mail("sender@remote.example")
code, msg = s.rcpt("nobody@example.test")
assert code == 550 and b"5.1.1" in msg, (code, msg)
code, msg = s.rcpt("victim@elsewhere.example")
assert code == 554 and b"5.7.1" in msg, (code, msg)
code, msg = s.rcpt("Bob@Example.TEST")
assert code == 250, (code, msg)
code, msg = s.data(b"Subject: hi\r\nFrom: sender@remote.example\r\n\r\nbody\r\n")
assert code == 250, (code, msg)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s.starttls(context=ctx)
code, msg = s.ehlo("client.test")
assert s.has_extn("auth"), "AUTH not offered after TLS: %r" % msg
s.send_message
s.quit()
print("ok")
`
	out, err := python(t, script, fmt.Sprint(s.ports.SMTP))
	if err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("python smtplib: %v\n%s", err, out)
	}
	s.waitInbox("bob@example.test", 1)
}

// TestSeedAuthLoginTranscript replays the seed's telnet session (002): AUTH LOGIN with a base64 initial response,
// then MAIL FROM without angle brackets. Plaintext auth is allowed here, as on the seed's lab network.
func TestSeedAuthLoginTranscript(t *testing.T) {
	s := newServer(t, serverOptions{allowPlaintext: true, domain: "163.com"})
	s.addUser("user3@163.com", "123")
	s.addUser("user4@163.com", "456")
	// Exactly the seed's session: no EHLO, MAIL before AUTH refused, AUTH LOGIN with the username inline.
	tc := dial(t, s.addr(s.ports.Submission))
	tc.expect(220)
	tc.send("mail from:abc@163.com")
	tc.expectMatch(530, `5\.7\.0 Authentication required`)
	tc.send("AUTH LOGIN " + b64("user3@163.com"))
	tc.expectMatch(334, `^334 UGFzc3dvcmQ6$`)
	tc.send(b64("123"))
	tc.expect(235)
	tc.send("MAIL FROM:user3@163.com")
	tc.expect(250)
	tc.send("RCPT TO:user4@163.com")
	tc.expect(250)
	tc.send("DATA")
	tc.expect(354)
	tc.write("Subject: seed\r\n\r\nhello from the seed\r\n.\r\n")
	tc.expect(250)
	tc.send("QUIT")
	tc.expect(221)
	s.waitInbox("user4@163.com", 1)

	// The two-step form: AUTH LOGIN, 334 Username:, 334 Password:.
	tc = dial(t, s.addr(s.ports.Submission))
	tc.expect(220)
	tc.send("EHLO x")
	tc.reply()
	tc.send("AUTH LOGIN")
	tc.expectMatch(334, `^334 VXNlcm5hbWU6$`)
	tc.send(b64("user3@163.com"))
	tc.expectMatch(334, `^334 UGFzc3dvcmQ6$`)
	tc.send(b64("123"))
	tc.expect(235)
}

// TestAliasesAndVirtualMapping: several targets, catch-all, virtusertable-style domain mapping, remote targets.
func TestAliasesAndVirtualMapping(t *testing.T) {
	s := newServer(t, serverOptions{})
	s.run("domain", "add", "other.test")
	s.run("domain", "add", "catch.test")
	s.addUser("alice@example.test", "pw-alice-1")
	s.addUser("bob@example.test", "pw-bob-12")
	s.addUser("postmaster@catch.test", "pw-pm-123")
	s.run("alias", "add", "team@example.test", "alice@example.test", "bob@example.test", "ext@remote.example")
	s.run("alias", "add", "@other.test", "@example.test")         // %1@example.test
	s.run("alias", "add", "@catch.test", "postmaster@catch.test") // catch-all
	if out := s.run("alias", "list"); !strings.Contains(out, "team@example.test") {
		t.Fatalf("alias list:\n%s", out)
	}
	send := func(rcpt string) {
		t.Helper()
		tc := dial(t, s.addr(s.ports.SMTP))
		tc.expect(220)
		tc.send("EHLO client.test")
		tc.reply()
		tc.send("MAIL FROM:<x@remote.example>")
		tc.expect(250)
		tc.send("RCPT TO:<" + rcpt + ">")
		tc.expect(250)
		tc.send("DATA")
		tc.expect(354)
		tc.write("Subject: to " + rcpt + "\r\n\r\nhi\r\n.\r\n")
		tc.expect(250)
	}
	send("team@example.test")
	s.waitInbox("alice@example.test", 1)
	s.waitInbox("bob@example.test", 1)
	if q := s.run("queue", "list"); !strings.Contains(q, "ext@remote.example") {
		t.Fatalf("remote alias target not queued:\n%s", q)
	}
	send("alice@other.test")
	s.waitInbox("alice@example.test", 2)
	send("anything@catch.test")
	s.waitInbox("postmaster@catch.test", 1)
	send("alice+lists@example.test")
	s.waitInbox("alice@example.test", 3)
	// Removing the alias is seen by the running server.
	s.run("alias", "rm", "team@example.test")
	tc := dial(t, s.addr(s.ports.SMTP))
	tc.expect(220)
	tc.send("EHLO c")
	tc.reply()
	tc.send("MAIL FROM:<x@remote.example>")
	tc.expect(250)
	tc.send("RCPT TO:<team@example.test>")
	tc.expectMatch(550, `5\.1\.1`)
}

// TestAccessTable: sendmail-style access rules, changed while the server runs.
func TestAccessTable(t *testing.T) {
	s := newServer(t, serverOptions{})
	s.addUser("bob@example.test", "bob-secret")
	mx := func() *conn {
		tc := dial(t, s.addr(s.ports.SMTP))
		return tc
	}
	s.run("access", "add", "127.0.0.1", "REJECT")
	time.Sleep(1100 * time.Millisecond) // the contract: the server sees changes within a second
	tc := mx()
	if code, l := tc.reply(); code != 554 {
		// Some MTAs greet and reject at the first command instead.
		tc.send("EHLO c")
		if code2, l2 := tc.reply(); code2 != 554 {
			t.Fatalf("REJECTed IP got %q then %q", l, l2)
		}
	}
	s.run("access", "rm", "127.0.0.1")
	s.run("access", "add", "spammer.example", "REJECT")
	s.run("access", "add", "blackhole@remote.example", "DISCARD")
	s.run("access", "add", "127.0.0.0/8", "RELAY")
	tc = mx()
	tc.expect(220)
	tc.send("EHLO c")
	tc.reply()
	tc.send("MAIL FROM:<a@mx.spammer.example>")
	tc.expectMatch(550, `5\.7\.1`)
	tc.send("MAIL FROM:<blackhole@remote.example>")
	tc.expect(250)
	tc.send("RCPT TO:<bob@example.test>")
	tc.expect(250)
	tc.send("DATA")
	tc.expect(354)
	tc.write("Subject: discard me\r\n\r\nx\r\n.\r\n")
	tc.expect(250)
	s.waitInbox("bob@example.test", 0)
	// RELAY for the client network lets it send to remote domains without AUTH.
	tc.send("MAIL FROM:<ok@remote.example>")
	tc.expect(250)
	tc.send("RCPT TO:<far@away.example>")
	tc.expect(250)
	if out := s.run("access", "list"); !strings.Contains(out, "127.0.0.0/8") || !strings.Contains(out, "RELAY") {
		t.Fatalf("access list:\n%s", out)
	}
	if out, err := s.runErr("", "access", "add", "not a pattern!", "MAYBE"); err == nil {
		t.Fatalf("bad access rule accepted:\n%s", out)
	}
}
