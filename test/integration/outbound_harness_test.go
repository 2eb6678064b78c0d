//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	mdns "github.com/miekg/dns"
)

// labHost is one Postern of the two-domain lab: its own loopback address, the lab's shared SMTP port (the
// remote_port every instance dials) and the lab's DNS server.
type labHost struct {
	*server
	ip     string
	domain string
}

func (h *labHost) at(port int) string { return net.JoinHostPort(h.ip, fmt.Sprint(port)) }

// sharedPort finds a port free on every given loopback address.
func sharedPort(t *testing.T, ips ...string) int {
	t.Helper()
	for range 50 {
		p := freePort(t)
		ok := true
		for _, ip := range ips {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(p)))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no port free on every lab address")
	return 0
}

// newLabHost runs postern init for domain and writes a config listening on ip; start runs it.
func newLabHost(t *testing.T, ip, domain string, smtpPort int, resolver, extra string) *labHost {
	t.Helper()
	dir := t.TempDir()
	s := &server{t: t, dir: dir, config: filepath.Join(dir, "postern.toml")}
	s.run("init", "--dir", dir, "--hostname", "mail."+domain, "--domain", domain)
	s.ports = ports{SMTP: smtpPort, Submission: freePort(t), IMAPS: freePort(t)}
	cfg := fmt.Sprintf(`hostname = "mail.%[1]s"
data_dir = "data"

[listen]
smtp = ["%[2]s:%[3]d"]
submission = ["%[2]s:%[4]d"]
submissions = []
imap = []
imaps = ["%[2]s:%[5]d"]
pop3 = []
pop3s = []
pop2 = []
http = []

[dns]
resolver = %[6]q

[delivery]
remote_port = %[3]d
max_message_size = "1MiB"
%[7]s
`, domain, ip, smtpPort, s.ports.Submission, s.ports.IMAPS, resolver, extra)
	if err := os.WriteFile(s.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	h := &labHost{server: s, ip: ip, domain: domain}
	t.Cleanup(s.stop)
	return h
}

// start launches `postern serve` and waits until its SMTP port answers on its own address.
func (h *labHost) start() {
	h.t.Helper()
	s := h.server
	s.stderr = &syncBuffer{}
	s.cmd = exec.Command(binary, "-c", s.config, "serve")
	s.cmd.Stdout, s.cmd.Stderr = s.stderr, s.stderr
	if err := s.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	done := make(chan struct{})
	s.done = done
	cmd := s.cmd
	go func() {
		s.exitErr = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", h.at(s.ports.SMTP), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			h.t.Fatalf("postern serve (%s) exited early: %v\n%s", h.domain, s.exitErr, s.stderr)
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("postern (%s) did not listen on %s:\n%s", h.domain, h.at(s.ports.SMTP), s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// submit sends msg over submission with STARTTLS and AUTH PLAIN.
func (h *labHost) submit(from, password string, to []string, msg string) {
	h.t.Helper()
	c, err := smtp.DialStartTLS(h.at(h.ports.Submission), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		h.t.Fatalf("submission to %s: %v", h.domain, err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", from, password)); err != nil {
		h.t.Fatalf("AUTH as %s: %v", from, err)
	}
	if err := c.SendMail(from, to, strings.NewReader(msg)); err != nil {
		h.t.Fatalf("send from %s to %v: %v", from, to, err)
	}
	c.Quit()
}

// imapMessages reads every message of the user's INBOX over IMAPS with go-imap v2.
func (h *labHost) imapMessages(user, password string) []string {
	h.t.Helper()
	c, err := imapclient.DialTLS(h.at(h.ports.IMAPS), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		h.t.Fatalf("IMAP dial %s: %v", h.domain, err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		h.t.Fatalf("IMAP LOGIN %s: %v", user, err)
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		h.t.Fatalf("SELECT INBOX: %v", err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	var set imap.SeqSet
	set.AddRange(1, sel.NumMessages)
	msgs, err := c.Fetch(set, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		h.t.Fatalf("FETCH: %v", err)
	}
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		for _, b := range m.BodySection {
			out = append(out, string(b.Bytes))
		}
	}
	c.Logout().Wait()
	return out
}

// waitUntil polls cond; it fails only after a generous deadline (no timing is asserted).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startDNSMasqOn serves the lab's zone on 127.0.0.1:port from conf lines.
func startDNSMasqOn(t *testing.T, port int, lines []string) {
	t.Helper()
	bin := needTool(t, "dnsmasq")
	dir := t.TempDir()
	conf := filepath.Join(dir, "dnsmasq.conf")
	all := append([]string{
		fmt.Sprintf("port=%d", port), "listen-address=127.0.0.1", "bind-interfaces", "no-resolv", "no-hosts",
		"no-poll", "pid-file=", "local=/test/", "log-queries", "log-facility=-",
	}, lines...)
	if err := os.WriteFile(conf, []byte(strings.Join(all, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--keep-in-foreground", "--conf-file="+conf)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("dnsmasq: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dnsmasq log:\n%s", log)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitUntil(t, "dnsmasq answers", func() bool {
		m := new(mdns.Msg)
		m.SetQuestion("test.", mdns.TypeSOA)
		_, _, err := (&mdns.Client{Timeout: 200 * time.Millisecond}).Exchange(m, addr)
		return err == nil
	})
}

// freeUDPPort returns a port free for UDP and TCP both (dnsmasq binds both), never handed out before.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	for {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		pc.Close()
		if err != nil {
			continue
		}
		ln.Close()
		if reservePort(port) {
			return port
		}
	}
}

// dkimRecords runs `postern dns records DOMAIN` and returns its DKIM TXT records: name -> joined value.
func (h *labHost) dkimRecords() map[string]string {
	h.t.Helper()
	out := h.run("dns", "records", h.domain)
	recs := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.Contains(f[0], "._domainkey.") || f[3] != "TXT" {
			continue
		}
		_, rest, _ := strings.Cut(line, " TXT ")
		var val strings.Builder
		for _, part := range strings.Split(strings.TrimSpace(rest), `" "`) {
			val.WriteString(strings.Trim(part, `"`))
		}
		recs[strings.TrimSuffix(f[0], ".")] = val.String()
	}
	if len(recs) != 2 {
		h.t.Fatalf("dns records %s: want 2 DKIM records, got %v\n%s", h.domain, recs, out)
	}
	return recs
}

// txtLines turns TXT records into dnsmasq txt-record lines, splitting values into 255-byte strings.
func txtLines(recs map[string]string) []string {
	var out []string
	for name, v := range recs {
		var parts []string
		for len(v) > 255 {
			parts = append(parts, `"`+v[:255]+`"`)
			v = v[255:]
		}
		parts = append(parts, `"`+v+`"`)
		out = append(out, "txt-record="+name+","+strings.Join(parts, ","))
	}
	return out
}
