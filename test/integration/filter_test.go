//go:build integration

package integration

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// gtube is SpamAssassin's Generic Test for Unsolicited Bulk Email: any spam filter calls a message holding it spam.
const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// fakeRspamd answers rspamd's /checkv2 like rspamd would for the test's marker: "JUNKME" gets "add header" with a
// score over junk_score, anything else "no action" (GTUBE is left to the built-in rules).
func fakeRspamd(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res := map[string]any{"action": "no action", "score": 0.0, "required_score": 15.0, "symbols": map[string]any{}}
		switch {
		case r.URL.Path != "/checkv2":
			http.NotFound(w, r)
			return
		case strings.Contains(string(body), "JUNKME"):
			res["action"], res["score"] = "add header", 7.0
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(res)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// dialFrom opens a raw SMTP connection to addr from the loopback address local (a lab "client host").
func dialFrom(t *testing.T, local, addr string) *conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{t: t, c: c, br: bufio.NewReader(c)}
}

// mailboxMessages reads every message of one of the user's mailboxes over IMAPS.
func (h *labHost) mailboxMessages(user, password, mailbox string) []string {
	h.t.Helper()
	c, err := imapclient.DialTLS(h.at(h.ports.IMAPS), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		h.t.Fatalf("IMAP dial %s: %v", h.domain, err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		h.t.Fatalf("IMAP LOGIN %s: %v", user, err)
	}
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		h.t.Fatalf("SELECT %s: %v", mailbox, err)
	}
	var out []string
	if sel.NumMessages > 0 {
		var set imap.SeqSet
		set.AddRange(1, sel.NumMessages)
		msgs, err := c.Fetch(set, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil {
			h.t.Fatalf("FETCH: %v", err)
		}
		for _, m := range msgs {
			for _, b := range m.BodySection {
				out = append(out, string(b.Bytes))
			}
		}
	}
	c.Logout().Wait()
	return out
}

// mxSend runs one transaction on an open MX connection and returns the final reply's code and line.
func mxSend(tc *conn, from, to, msg string) (int, string) {
	tc.t.Helper()
	tc.send("MAIL FROM:<" + from + ">")
	tc.expect(250)
	tc.send("RCPT TO:<" + to + ">")
	if code, lines := tc.reply(); code != 250 {
		tc.send("RSET")
		tc.expect(250)
		return code, lines[len(lines)-1]
	}
	tc.send("DATA")
	tc.expect(354)
	tc.write(strings.ReplaceAll(msg, "\r\n.", "\r\n..") + ".\r\n")
	code, lines := tc.reply()
	return code, lines[len(lines)-1]
}

// TestFilterLab runs the MX checks end to end in the two-domain lab: b.test checks what reaches it with SPF,
// DKIM and DMARC (a.test publishes SPF, DKIM keys and a DMARC policy in the lab's DNS) and records the results in
// the stored message's Authentication-Results, drops an Authentication-Results header forged in its name, refuses
// a client listed in a DNSBL (dnsmasq serves the RFC 5782 test entry 2.0.0.127.bl.test), greylists an unknown
// client (451, then accepted after the delay), refuses GTUBE at DATA and files a message over junk_score into
// Junk, seen over IMAP.
func TestFilterLab(t *testing.T) {
	needTool(t, "dnsmasq")
	port := sharedPort(t, "127.0.0.1", "127.0.0.2")
	dnsPort := freeUDPPort(t)
	resolver := fmt.Sprintf("127.0.0.1:%d", dnsPort)
	a := newLabHost(t, "127.0.0.1", "a.test", port, resolver, "")
	b := newLabHost(t, "127.0.0.2", "b.test", port, resolver, fmt.Sprintf(`
[antispam]
dnsbl = ["bl.test"]
greylist = true
greylist_delay = "1s"
rspamd = %q
`, fakeRspamd(t)))
	a.addUser("alice@a.test", "alice-secret-1")
	b.addUser("bob@b.test", "bob-secret-1")
	// a.test's server is a trusted neighbour of b.test (the access table's OK): it skips greylisting.
	b.run("access", "add", "127.0.0.1", "OK")
	keys := a.dkimRecords()
	keys["a.test"] = "v=spf1 ip4:127.0.0.1 -all"
	keys["_dmarc.a.test"] = "v=DMARC1; p=reject"
	keys["2.0.0.127.bl.test"] = "Listed for testing, see https://bl.test/"
	lines := append([]string{
		"mx-host=a.test,mail.a.test,10", "mx-host=b.test,mail.b.test,10",
		"host-record=mail.a.test,127.0.0.1", "host-record=mail.b.test,127.0.0.2",
		"host-record=2.0.0.127.bl.test,127.0.0.2",
	}, txtLines(keys)...)
	startDNSMasqOn(t, dnsPort, lines)
	a.start()
	b.start()

	t.Run("AuthenticationResults", func(t *testing.T) {
		a.submit("alice@a.test", "alice-secret-1", []string{"bob@b.test"}, labMessage("alice@a.test", "bob@b.test", "Signed", "f-1"))
		waitUntil(t, "bob has alice's message", func() bool { return b.inboxCount("bob@b.test") == 1 })
		got := b.mailboxMessages("bob@b.test", "bob-secret-1", "INBOX")[0]
		hdr, _, _ := strings.Cut(got, "\r\n\r\n")
		for _, want := range []string{"Authentication-Results: mail.b.test;", "spf=pass smtp.mailfrom=alice@a.test",
			"dkim=pass header.a=rsa-sha256", "dkim=pass header.a=ed25519-sha256", "header.d=a.test", "dmarc=pass",
			"header.from=a.test"} {
			if !strings.Contains(strings.Join(strings.Fields(hdr), " "), want) {
				t.Errorf("Authentication-Results lacks %q:\n%s", want, hdr)
			}
		}
		t.Logf("stored header:\n%s", hdr)
	})

	t.Run("ForgedAuthenticationResultsStripped", func(t *testing.T) {
		tc := dialFrom(t, "127.0.0.1", b.at(port))
		tc.expect(220)
		tc.send("EHLO mail.a.test")
		tc.expect(250)
		msg := "Authentication-Results: mail.b.test; spf=pass smtp.mailfrom=forged@evil.test\r\n" +
			"Authentication-Results: relay.other.test; dkim=pass header.d=other.test\r\n" +
			labMessage("alice@a.test", "bob@b.test", "Forged", "f-2")
		if code, line := mxSend(tc, "alice@a.test", "bob@b.test", msg); code != 250 {
			t.Fatalf("forged message: %s", line)
		}
		var stored string
		for _, m := range b.mailboxMessages("bob@b.test", "bob-secret-1", "INBOX") {
			if strings.Contains(m, "Subject: Forged") {
				stored = m
			}
		}
		if strings.Contains(stored, "forged@evil.test") || !strings.Contains(stored, "relay.other.test; dkim=pass") ||
			!strings.Contains(stored, "Authentication-Results: mail.b.test;") {
			t.Errorf("forged Authentication-Results kept or foreign one dropped:\n%s", stored)
		}
	})

	t.Run("DMARCReject", func(t *testing.T) {
		// From: a.test without a.test's signature or SPF alignment: a.test's p=reject applies.
		tc := dialFrom(t, "127.0.0.1", b.at(port))
		tc.expect(220)
		tc.send("EHLO mail.evil.test")
		tc.expect(250)
		msg := labMessage("alice@a.test", "bob@b.test", "Spoofed", "f-7")
		code, line := mxSend(tc, "bounce@evil.test", "bob@b.test", msg)
		if code != 550 || !strings.Contains(line, "5.7.1") || !strings.Contains(line, "DMARC") {
			t.Errorf("spoofed a.test: %d %s", code, line)
		}
	})

	t.Run("DNSBL", func(t *testing.T) {
		tc := dialFrom(t, "127.0.0.2", b.at(port))
		tc.expect(220)
		tc.send("EHLO listed.example")
		tc.expect(250)
		code, line := mxSend(tc, "someone@listed.test", "bob@b.test", labMessage("someone@listed.test", "bob@b.test", "Listed", "f-3"))
		if code != 554 || !strings.Contains(line, "5.7.1") || !strings.Contains(line, "blocked using bl.test; Listed for testing") {
			t.Errorf("listed client: %d %s", code, line)
		}
		if log := b.mailLog(); !strings.Contains(log, "rejected from=<someone@listed.test> to=<bob@b.test>") {
			t.Errorf("mail log lacks the refusal with sender and recipient:\n%s", log)
		}
	})

	t.Run("Greylisting", func(t *testing.T) {
		tc := dialFrom(t, "127.0.0.3", b.at(port))
		tc.expect(220)
		tc.send("EHLO new.example")
		tc.expect(250)
		msg := labMessage("news@new.test", "bob@b.test", "Greylisted", "f-4")
		code, line := mxSend(tc, "news@new.test", "bob@b.test", msg)
		if code != 451 || !strings.Contains(line, "4.7.1 Greylisted") {
			t.Fatalf("first attempt: %d %s", code, line)
		}
		// Retry like an MTA until the delay has passed; nothing is asserted about the time it takes.
		waitUntil(t, "the retry is accepted", func() bool {
			time.Sleep(500 * time.Millisecond)
			code, line = mxSend(tc, "news@new.test", "bob@b.test", msg)
			if code != 250 && code != 451 {
				t.Fatalf("retry: %d %s", code, line)
			}
			return code == 250
		})
		if log := b.mailLog(); !strings.Contains(log, "greylist at rcpt: tempfail") {
			t.Errorf("mail log lacks the greylisting:\n%s", log)
		}
	})

	t.Run("GTUBERejectedAtDATA", func(t *testing.T) {
		tc := dialFrom(t, "127.0.0.1", b.at(port))
		tc.expect(220)
		tc.send("EHLO mail.a.test")
		tc.expect(250)
		msg := labMessage("alice@a.test", "bob@b.test", "Test spam", "f-5") + gtube + "\r\n"
		code, line := mxSend(tc, "alice@a.test", "bob@b.test", msg)
		if code != 554 || !strings.Contains(line, "5.7.1 Message rejected as spam") {
			t.Errorf("GTUBE: %d %s", code, line)
		}
		if log := b.mailLog(); !strings.Contains(log, "rules at data: tag: rules 1000.0: GTUBE") {
			t.Errorf("mail log lacks the GTUBE rule:\n%s", log)
		}
	})

	t.Run("JunkFiling", func(t *testing.T) {
		tc := dialFrom(t, "127.0.0.1", b.at(port))
		tc.expect(220)
		tc.send("EHLO mail.a.test")
		tc.expect(250)
		msg := labMessage("alice@a.test", "bob@b.test", "Cheap pills", "f-6") + "JUNKME\r\n"
		if code, line := mxSend(tc, "alice@a.test", "bob@b.test", msg); code != 250 {
			t.Fatalf("junk message: %s", line)
		}
		junk := b.mailboxMessages("bob@b.test", "bob-secret-1", "Junk")
		if len(junk) != 1 || !strings.Contains(junk[0], "Subject: Cheap pills") || !strings.Contains(junk[0], "X-Spam-Status: Yes") {
			t.Fatalf("Junk over IMAP: %q", junk)
		}
		for _, m := range b.mailboxMessages("bob@b.test", "bob-secret-1", "INBOX") {
			if strings.Contains(m, "Cheap pills") {
				t.Errorf("junk also in INBOX")
			}
		}
	})
	t.Logf("b.test mail log:\n%s", b.mailLog())
}
