//go:build integration

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// postfixMaster is a private Postfix instance: its own config, queue and maildir under one directory, listening
// on ip:port. It delivers every address of domain into one maildir and sends mail for relayDomain to
// [relayIP]:port (the Postern under test).
type postfixMaster struct {
	dir, conf string
}

func startPostfix(t *testing.T, ip string, port int, domain, relayDomain, relayIP, certPrefix string) *postfixMaster {
	t.Helper()
	needTool(t, "postfix")
	if os.Geteuid() != 0 {
		t.Skip("running a private Postfix needs root")
	}
	dir, err := os.MkdirTemp("", "postern-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // the virtual delivery agent runs as nobody and must reach the maildir
	p := &postfixMaster{dir: dir, conf: filepath.Join(dir, "etc")}
	for _, d := range []string{"etc", "spool", "data", "vmail"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	chown := func(user, path string) {
		if out, err := exec.Command("chown", user, path).CombinedOutput(); err != nil {
			t.Fatalf("chown %s %s: %v %s", user, path, err, out)
		}
	}
	chown("65534:65534", filepath.Join(dir, "vmail"))
	chown("postfix", filepath.Join(dir, "data"))
	main := fmt.Sprintf(`compatibility_level = 3.6
myhostname = mail.%[1]s
mydomain = %[1]s
myorigin = %[1]s
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
queue_directory = %[2]s/spool
data_directory = %[2]s/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = %[2]s/postfix.log
maillog_file_prefixes = %[2]s
alias_maps =
alias_database =
virtual_mailbox_domains = %[1]s
virtual_mailbox_base = %[2]s/vmail
virtual_mailbox_maps = static:mbox/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
transport_maps = inline:{ %[3]s=smtp:[%[4]s]:%[5]d }
smtp_tls_security_level = may
smtpd_tls_security_level = may
smtpd_tls_chain_files = %[6]s.key, %[6]s.crt
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtputf8_enable = no
`, domain, dir, relayDomain, relayIP, port, certPrefix)
	master := fmt.Sprintf("%s:%d inet n - n - - smtpd\n", ip, port) + `pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
`
	if err := os.WriteFile(filepath.Join(p.conf, "main.cf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.conf, "master.cf"), []byte(master), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("postfix", "-c", p.conf, "start").CombinedOutput(); err != nil {
		t.Fatalf("postfix start: %v %s\n%s", err, out, p.log())
	}
	t.Cleanup(func() {
		exec.Command("postfix", "-c", p.conf, "stop").Run()
		if t.Failed() {
			t.Logf("postfix log:\n%s", p.log())
		}
		os.RemoveAll(dir)
	})
	return p
}

func (p *postfixMaster) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "postfix.log"))
	return string(b)
}

// maildir returns the messages Postfix delivered.
func (p *postfixMaster) maildir() []string {
	files, _ := filepath.Glob(filepath.Join(p.dir, "vmail", "mbox", "new", "*"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil {
			out = append(out, string(b))
		}
	}
	return out
}

// TestOutboundPostfixInterop: Postern delivers to a real Postfix found through MX records (STARTTLS, DKIM
// signature kept), and Postfix delivers to Postern.
func TestOutboundPostfixInterop(t *testing.T) {
	needTool(t, "dnsmasq")
	needTool(t, "postfix")
	if os.Geteuid() != 0 {
		t.Skip("running a private Postfix needs root")
	}
	port := sharedPort(t, "127.0.0.1", "127.0.0.3")
	dnsPort := freeUDPPort(t)
	resolver := fmt.Sprintf("127.0.0.1:%d", dnsPort)
	a := newLabHost(t, "127.0.0.1", "a.test", port, resolver, "")
	a.addUser("alice@a.test", "alice-secret-1")
	keys := a.dkimRecords()
	startDNSMasqOn(t, dnsPort, append([]string{
		"mx-host=a.test,mail.a.test,10", "mx-host=pf.test,mail.pf.test,10",
		"host-record=mail.a.test,127.0.0.1", "host-record=mail.pf.test,127.0.0.3",
	}, txtLines(keys)...))
	cert := filepath.Join(a.dir, "pf")
	a.run("ca", "issue", "--out", cert, "mail.pf.test")
	pf := startPostfix(t, "127.0.0.3", port, "pf.test", "a.test", "127.0.0.1", cert)
	a.start()

	// Postern -> Postfix.
	a.submit("alice@a.test", "alice-secret-1", []string{"carol@pf.test"}, labMessage("alice@a.test", "carol@pf.test", "To Postfix", "pf-1"))
	waitUntil(t, "Postfix delivered alice's message", func() bool { return len(pf.maildir()) == 1 })
	got := pf.maildir()[0]
	for _, want := range []string{"Subject: To Postfix", "DKIM-Signature: ", "d=a.test", "by mail.pf.test (Postfix) with ESMTPS"} {
		if !strings.Contains(got, want) {
			t.Errorf("message at Postfix lacks %q:\n%s", want, got)
		}
	}
	verifyDKIM(t, got, "a.test", resolver)
	if log := a.mailLog(); !strings.Contains(log, "to=<carol@pf.test> size=") || !strings.Contains(log, "remote=mail.pf.test[127.0.0.3]") {
		t.Errorf("A's mail log:\n%s", log)
	}

	// Postfix -> Postern: Postfix relays for loopback clients and routes a.test to Postern.
	c, err := smtp.Dial(fmt.Sprintf("127.0.0.3:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("carol@pf.test", []string{"alice@a.test"}, strings.NewReader(labMessage("carol@pf.test", "alice@a.test", "From Postfix", "pf-2"))); err != nil {
		t.Fatalf("submit to Postfix: %v", err)
	}
	c.Quit()
	waitUntil(t, "alice has carol's message", func() bool { return a.inboxCount("alice@a.test") == 1 })
	msgs := a.imapMessages("alice@a.test", "alice-secret-1")
	if len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: From Postfix") || !strings.Contains(msgs[0], "(Postfix)") {
		t.Fatalf("alice's INBOX: %q", msgs)
	}
	if !strings.Contains(pf.log(), "relay=127.0.0.1[127.0.0.1]:") || !strings.Contains(pf.log(), "status=sent") {
		t.Errorf("Postfix log:\n%s", pf.log())
	}
}
