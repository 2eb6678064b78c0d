//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestChunkingBDAT sends a message in two BDAT chunks (RFC 3030 2) with pipelining, and checks the stored copy.
func TestChunkingBDAT(t *testing.T) {
	s := newServer(t, serverOptions{})
	s.addUser("bob@example.test", "bob-secret")
	tc := dial(t, s.addr(s.ports.SMTP))
	tc.expect(220)
	tc.send("EHLO client.test")
	if _, lines := tc.reply(); !strings.Contains(strings.Join(lines, "\n"), "CHUNKING") {
		t.Fatalf("CHUNKING not advertised: %q", lines)
	}
	part1 := "Subject: chunked\r\nFrom: a@remote.example\r\n\r\nfirst half "
	part2 := "second half\r\n"
	// PIPELINING: the whole transaction in one write; BDAT data are raw octets, no dot-stuffing.
	tc.write(fmt.Sprintf("MAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.test>\r\nBDAT %d\r\n%sBDAT %d LAST\r\n%s",
		len(part1), part1, len(part2), part2))
	tc.expect(250) // MAIL
	tc.expect(250) // RCPT
	tc.expect(250) // first chunk
	tc.expectMatch(250, `2\.0\.0`)
	s.waitInbox("bob@example.test", 1)
	// The stored size is the chunks plus the Received: and Return-Path: headers Postern adds.
	if size := s.mailboxes("bob@example.test")["INBOX"][2]; size <= int64(len(part1)+len(part2)) {
		t.Fatalf("INBOX size %d, want more than the %d octets sent", size, len(part1)+len(part2))
	}
	// BDAT after a failed RCPT (no valid recipient): 554 5.5.1 per RFC 3030 2 / RFC 5321 3.3, and the session goes on.
	tc.send("MAIL FROM:<a@remote.example>")
	tc.expect(250)
	tc.send("RCPT TO:<nobody@example.test>")
	tc.expect(550)
	tc.write("BDAT 5 LAST\r\nhello")
	if code, l := tc.reply(); code/100 != 5 {
		t.Fatalf("BDAT without recipients: %q", l)
	}
	tc.send("NOOP")
	tc.expect(250)
}

// TestSMTPUTF8 delivers a message with a UTF-8 envelope sender and UTF-8 headers (RFC 6531) through Python's smtplib.
func TestSMTPUTF8(t *testing.T) {
	s := newServer(t, serverOptions{})
	s.addUser("bob@example.test", "bob-secret")
	script := `
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.ehlo("client.test")
assert s.has_extn("smtputf8")
msg = "From: José <josé@remote.example>\r\nTo: bob@example.test\r\nSubject: café ☕\r\n\r\nnaïve body\r\n".encode()
refused = s.sendmail("josé@remote.example", ["bob@example.test"], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
assert not refused, refused
# Without SMTPUTF8 a UTF-8 address is refused (RFC 6531 3.4).
code, resp = s.mail("josé@remote.example")
assert code == 553 or code == 501 or code == 550, (code, resp)
s.rset()
s.quit()
print("ok")
`
	out, err := python(t, script, fmt.Sprint(s.ports.SMTP))
	if err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("python smtplib: %v\n%s", err, out)
	}
	s.waitInbox("bob@example.test", 1)
}

// TestDSNParametersStored: RET/ENVID on MAIL and NOTIFY/ORCPT on RCPT (RFC 3461) are kept with the queued message.
func TestDSNParametersStored(t *testing.T) {
	s := newServer(t, serverOptions{})
	s.addUser("alice@example.test", "alice-secret")
	tc := dial(t, s.addr(s.ports.Submission))
	tc.expect(220)
	tc.send("EHLO client.test")
	tc.reply()
	tc.starttls()
	tc.send("EHLO client.test")
	if _, lines := tc.reply(); !strings.Contains(strings.Join(lines, "\n"), "DSN") {
		t.Fatalf("DSN not advertised: %q", lines)
	}
	tc.send("AUTH PLAIN " + plain("alice@example.test", "alice-secret"))
	tc.expect(235)
	tc.send("MAIL FROM:<alice@example.test> RET=HDRS ENVID=QQ314159")
	tc.expect(250)
	tc.send("RCPT TO:<carol@remote.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Carol@remote.example")
	tc.expect(250)
	tc.send("RCPT TO:<dave@remote.example> NOTIFY=NEVER")
	tc.expect(250)
	tc.send("DATA")
	tc.expect(354)
	tc.write("From: alice@example.test\r\nSubject: dsn\r\n\r\nbody\r\n.\r\n")
	tc.expectMatch(250, `2\.0\.0`)

	id, _, _ := strings.Cut(strings.TrimSpace(s.run("queue", "list")), "\t")
	if id == "" {
		t.Fatal("nothing queued")
	}
	var m struct {
		Ret, EnvID string
		Recipients []struct {
			Address, ORcpt string
			Notify         []string
		}
	}
	if err := json.Unmarshal([]byte(s.run("queue", "show", "--json", id)), &m); err != nil {
		t.Fatal(err)
	}
	if m.Ret != "HDRS" || m.EnvID != "QQ314159" || len(m.Recipients) != 2 {
		t.Fatalf("queued entry lost MAIL parameters: %+v", m)
	}
	r0, r1 := m.Recipients[0], m.Recipients[1]
	if r0.Address != "carol@remote.example" || strings.Join(r0.Notify, ",") != "SUCCESS,DELAY" ||
		!strings.EqualFold(r0.ORcpt, "rfc822;Carol@remote.example") {
		t.Fatalf("first recipient: %+v", r0)
	}
	if r1.Address != "dave@remote.example" || strings.Join(r1.Notify, ",") != "NEVER" {
		t.Fatalf("second recipient: %+v", r1)
	}
}
