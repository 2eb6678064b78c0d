//go:build integration

package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestOutboundMTASTS: a.test (127.0.0.1) delivers to b.test and c.test, both handled by mail.b.test
// (127.0.0.2). dnsmasq publishes their _mta-sts TXT records; an HTTPS server on 127.0.0.2 plays mta-sts.b.test
// and mta-sts.c.test with a certificate from B's built-in CA, which A trusts through delivery.ca_file. b.test's
// enforced policy lists mail.b.test: A delivers over verified TLS. c.test's enforced policy lists another host:
// A does not deliver and keeps the message queued with a temporary failure (RFC 8461 5).
func TestOutboundMTASTS(t *testing.T) {
	needTool(t, "dnsmasq")
	port := sharedPort(t, "127.0.0.1", "127.0.0.2")
	httpsPort := sharedPort(t, "127.0.0.2")
	dnsPort := freeUDPPort(t)
	resolver := fmt.Sprintf("127.0.0.1:%d", dnsPort)
	b := newLabHost(t, "127.0.0.2", "b.test", port, resolver, "")
	caFile := filepath.Join(b.dir, "data", "ca", "ca.crt")
	a := newLabHost(t, "127.0.0.1", "a.test", port, resolver, fmt.Sprintf("mta_sts_port = %d\nca_file = %q\n", httpsPort, caFile))
	a.addUser("alice@a.test", "alice-secret-1")
	b.addUser("bob@b.test", "bob-secret-1")
	b.run("domain", "add", "c.test")
	b.addUser("carol@c.test", "carol-secret-1")
	ph := startPolicyHost(t, b, fmt.Sprintf("127.0.0.2:%d", httpsPort), map[string]string{
		"mta-sts.b.test": "version: STSv1\nmode: enforce\nmx: mail.b.test\nmax_age: 86400\n",
		"mta-sts.c.test": "version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 86400\n",
	})
	startDNSMasqOn(t, dnsPort, []string{
		"mx-host=a.test,mail.a.test,10", "mx-host=b.test,mail.b.test,10", "mx-host=c.test,mail.b.test,10",
		"host-record=mail.a.test,127.0.0.1", "host-record=mail.b.test,127.0.0.2",
		"host-record=mta-sts.b.test,127.0.0.2", "host-record=mta-sts.c.test,127.0.0.2",
		`txt-record=_mta-sts.b.test,"v=STSv1; id=20261123"`, `txt-record=_mta-sts.c.test,"v=STSv1; id=20261123"`,
	})
	a.start()
	b.start()

	a.submit("alice@a.test", "alice-secret-1", []string{"bob@b.test"}, labMessage("alice@a.test", "bob@b.test", "Over MTA-STS", "sts-1"))
	waitUntil(t, "bob has alice's message", func() bool { return b.inboxCount("bob@b.test") == 1 })
	if l := logLines(a.mailLog(), "delivered", "to=<bob@b.test>", "verified=pkix policy=mta-sts"); len(l) != 1 {
		t.Errorf("A's mail log does not show a delivery verified under MTA-STS:\n%s", a.mailLog())
	}
	if ph.fetched("mta-sts.b.test") != 1 {
		t.Errorf("policy of b.test fetched %d times, want 1", ph.fetched("mta-sts.b.test"))
	}

	a.submit("alice@a.test", "alice-secret-1", []string{"carol@c.test"}, labMessage("alice@a.test", "carol@c.test", "Blocked by MTA-STS", "sts-2"))
	waitUntil(t, "A defers the message to c.test", func() bool {
		return len(logLines(a.mailLog(), "deferred", "to=<carol@c.test>", "4.7.0", "MTA-STS")) > 0
	})
	if n := b.inboxCount("carol@c.test"); n != 0 {
		t.Fatalf("carol got %d messages through a host the policy does not list", n)
	}
	if q := a.run("queue", "list"); !strings.Contains(q, "carol@c.test") {
		t.Errorf("the deferred message is not in A's queue: %q", q)
	}
	if l := logLines(a.mailLog(), "bounced"); len(l) != 0 {
		t.Errorf("an MTA-STS failure bounced instead of waiting: %q", l)
	}
}
