//go:build integration

package integration

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

// TestOutboundLab is the seeds' two-domain lab (issue #6): two Postern instances on 127.0.0.1 (a.test) and
// 127.0.0.2 (b.test) find each other through MX records served by dnsmasq; users on each side write to the other
// over submission and read over IMAP; mail to an unknown user comes back to the sender's INBOX as a DSN; mail to
// a far side that is down waits in the queue and goes out after it is back and `postern queue flush` runs; and
// the received copy carries DKIM signatures that verify against the keys published in the lab's DNS.
func TestOutboundLab(t *testing.T) {
	needTool(t, "dnsmasq")
	port := sharedPort(t, "127.0.0.1", "127.0.0.2")
	dnsPort := freeUDPPort(t)
	resolver := fmt.Sprintf("127.0.0.1:%d", dnsPort)
	a := newLabHost(t, "127.0.0.1", "a.test", port, resolver, "")
	b := newLabHost(t, "127.0.0.2", "b.test", port, resolver, "")
	a.addUser("alice@a.test", "alice-secret-1")
	b.addUser("bob@b.test", "bob-secret-1")
	keys := a.dkimRecords()
	for k, v := range b.dkimRecords() {
		keys[k] = v
	}
	lines := append([]string{
		"mx-host=a.test,mail.a.test,10", "mx-host=b.test,mail.b.test,10",
		"host-record=mail.a.test,127.0.0.1", "host-record=mail.b.test,127.0.0.2",
	}, txtLines(keys)...)
	startDNSMasqOn(t, dnsPort, lines)
	a.start()
	b.start()

	// alice@a.test -> bob@b.test, and back.
	a.submit("alice@a.test", "alice-secret-1", []string{"bob@b.test"}, labMessage("alice@a.test", "bob@b.test", "Hello from A", "lab-1"))
	waitUntil(t, "bob has alice's message", func() bool { return b.inboxCount("bob@b.test") == 1 })
	b.submit("bob@b.test", "bob-secret-1", []string{"alice@a.test"}, labMessage("bob@b.test", "alice@a.test", "Reply from B", "lab-2"))
	waitUntil(t, "alice has bob's reply", func() bool { return a.inboxCount("alice@a.test") == 1 })

	got := b.imapMessages("bob@b.test", "bob-secret-1")
	if len(got) != 1 || !strings.Contains(got[0], "Subject: Hello from A") {
		t.Fatalf("bob's INBOX over IMAP: %q", got)
	}
	verifyDKIM(t, got[0], "a.test", resolver)
	if back := a.imapMessages("alice@a.test", "alice-secret-1"); len(back) != 1 || !strings.Contains(back[0], "Subject: Reply from B") {
		t.Fatalf("alice's INBOX over IMAP: %q", back)
	} else {
		verifyDKIM(t, back[0], "b.test", resolver)
	}
	if log := a.mailLog(); !strings.Contains(log, "delivered from=<alice@a.test> to=<bob@b.test>") ||
		!strings.Contains(log, "remote=mail.b.test[127.0.0.2]") || !strings.Contains(log, "TLS") {
		t.Errorf("A's mail log lacks the remote delivery over TLS:\n%s", log)
	}

	// Unknown user on the far side: B refuses at RCPT, A bounces into alice's INBOX as a DSN.
	a.submit("alice@a.test", "alice-secret-1", []string{"nobody@b.test"}, labMessage("alice@a.test", "nobody@b.test", "Lost", "lab-3"))
	waitUntil(t, "alice has the bounce", func() bool { return a.inboxCount("alice@a.test") == 2 })
	var dsn string
	for _, m := range a.imapMessages("alice@a.test", "alice-secret-1") {
		if strings.Contains(m, "multipart/report") {
			dsn = m
		}
	}
	for _, want := range []string{"report-type=delivery-status", "Final-Recipient: rfc822; nobody@b.test", "Action: failed",
		"Status: 5.1.1", "Remote-MTA: dns; mail.b.test", "Diagnostic-Code: smtp; 550 5.1.1", "Subject: Lost"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
	if q := a.run("queue", "list"); strings.TrimSpace(q) != "" {
		t.Errorf("queue not empty after the bounce: %q", q)
	}

	// The far side is down: the message waits in A's queue, then goes out after B is back and the queue is flushed.
	b.stop()
	a.submit("alice@a.test", "alice-secret-1", []string{"bob@b.test"}, labMessage("alice@a.test", "bob@b.test", "While you were out", "lab-4"))
	waitUntil(t, "A defers the message", func() bool { return strings.Contains(a.mailLog(), "deferred from=<alice@a.test> to=<bob@b.test>") })
	if q := a.run("queue", "list"); !strings.Contains(q, "bob@b.test") {
		t.Fatalf("queue list while B is down: %q", q)
	}
	b.start()
	a.run("queue", "flush")
	waitUntil(t, "bob has the delayed message", func() bool { return b.inboxCount("bob@b.test") == 2 })
	waitUntil(t, "A's queue is empty", func() bool { return strings.TrimSpace(a.run("queue", "list")) == "" })
	if n := a.inboxCount("alice@a.test"); n != 2 {
		t.Errorf("alice has %d messages: a deferral must not bounce", n)
	}
	t.Logf("a.test mail log:\n%s", a.mailLog())
}

func labMessage(from, to, subject, id string) string {
	return fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@lab.test>\r\n\r\nThis is %s.\r\n",
		from, to, subject, time.Now().Format(time.RFC1123Z), id, id)
}

// verifyDKIM checks msg with go-msgauth's verifier, looking keys up in the lab's DNS.
func verifyDKIM(t *testing.T, msg, domain, resolver string) {
	t.Helper()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", resolver)
	}}
	vs, err := dkim.VerifyWithOptions(strings.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return r.LookupTXT(context.Background(), name) },
	})
	if err != nil {
		t.Fatalf("DKIM verify: %v", err)
	}
	algs := map[string]bool{}
	for _, v := range vs {
		if v.Err != nil {
			t.Errorf("DKIM signature of %s does not verify: %v", v.Domain, v.Err)
			continue
		}
		if v.Domain == domain {
			algs[v.Domain] = true
		}
	}
	if len(vs) != 2 || !algs[domain] {
		t.Errorf("want two valid signatures (RSA and Ed25519) by %s, got %+v", domain, vs)
	}
}
