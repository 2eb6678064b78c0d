//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
)

// TestOutboundDANE: a.test (127.0.0.1) delivers to b.test and c.test, both on the Postern at 127.0.0.2, through
// a DNS server that answers with the AD bit (a validating resolver's view of a signed zone). mail.b.test's TLSA
// record matches the certificate B presents: A delivers with "verified=dane". mail.c.test's TLSA record names
// another key: A must not deliver, not even in plain text, and keeps the message queued (RFC 7672 2.2).
// A REQUIRETLS message goes to bob over the DANE-verified connection (B advertises REQUIRETLS); one to d.test,
// whose MX has no TLSA record and a certificate A cannot verify, bounces with 5.7.30 (RFC 8689 5).
func TestOutboundDANE(t *testing.T) {
	port := sharedPort(t, "127.0.0.1", "127.0.0.2")
	dnsPort := freeUDPPort(t)
	resolver := fmt.Sprintf("127.0.0.1:%d", dnsPort)
	a := newLabHost(t, "127.0.0.1", "a.test", port, resolver, "")
	b := newLabHost(t, "127.0.0.2", "b.test", port, resolver, "")
	a.addUser("alice@a.test", "alice-secret-1")
	b.addUser("bob@b.test", "bob-secret-1")
	b.run("domain", "add", "c.test")
	b.addUser("carol@c.test", "carol-secret-1")
	b.start()
	cert := b.smtpCert()
	startSecureDNS(t, dnsPort, []string{
		"a.test. 300 IN MX 10 mail.a.test.", "mail.a.test. 300 IN A 127.0.0.1",
		"b.test. 300 IN MX 10 mail.b.test.", "mail.b.test. 300 IN A 127.0.0.2",
		"c.test. 300 IN MX 10 mail.c.test.", "mail.c.test. 300 IN A 127.0.0.2",
		fmt.Sprintf("_%d._tcp.mail.b.test. 300 IN TLSA 3 1 1 %s", port, tlsa311(cert)),
		fmt.Sprintf("_%d._tcp.mail.c.test. 300 IN TLSA 3 1 1 %s", port, strings.Repeat("ab", 32)),
		"d.test. 300 IN MX 10 mail.d.test.", "mail.d.test. 300 IN A 127.0.0.2",
	})
	a.start()

	a.submit("alice@a.test", "alice-secret-1", []string{"bob@b.test"}, labMessage("alice@a.test", "bob@b.test", "Over DANE", "dane-1"))
	waitUntil(t, "bob has alice's message", func() bool { return b.inboxCount("bob@b.test") == 1 })
	if l := logLines(a.mailLog(), "delivered", "to=<bob@b.test>", "tls=TLSv1.3 verified=dane"); len(l) != 1 {
		t.Errorf("A's mail log does not show a DANE-verified delivery:\n%s", a.mailLog())
	}

	a.submit("alice@a.test", "alice-secret-1", []string{"carol@c.test"}, labMessage("alice@a.test", "carol@c.test", "Wrong TLSA", "dane-2"))
	waitUntil(t, "A defers the message to c.test", func() bool {
		return len(logLines(a.mailLog(), "deferred", "to=<carol@c.test>", "4.7.5")) > 0
	})
	if n := b.inboxCount("carol@c.test"); n != 0 {
		t.Fatalf("carol got %d messages despite the TLSA mismatch", n)
	}
	if q := a.run("queue", "list"); !strings.Contains(q, "carol@c.test") {
		t.Errorf("the deferred message is not in A's queue: %q", q)
	}

	a.submitRequireTLS("alice@a.test", "alice-secret-1", "bob@b.test", labMessage("alice@a.test", "bob@b.test", "Secret", "dane-3"))
	waitUntil(t, "bob has the REQUIRETLS message", func() bool { return b.inboxCount("bob@b.test") == 2 })
	if l := logLines(a.mailLog(), "delivered", "to=<bob@b.test>", "verified=dane"); len(l) != 2 {
		t.Errorf("the REQUIRETLS message did not go over DANE:\n%s", a.mailLog())
	}
	a.submitRequireTLS("alice@a.test", "alice-secret-1", "dave@d.test", labMessage("alice@a.test", "dave@d.test", "Secret too", "dane-4"))
	waitUntil(t, "alice has the REQUIRETLS bounce", func() bool { return a.inboxCount("alice@a.test") == 1 })
	if l := logLines(a.mailLog(), "bounced", "to=<dave@d.test>", "5.7.30"); len(l) != 1 {
		t.Errorf("no 5.7.30 bounce for the REQUIRETLS message to d.test:\n%s", a.mailLog())
	}
}
