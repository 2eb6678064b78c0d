//go:build integration

package integration

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// newPOPServer starts postern with the POP3, POP3S and POP2 listeners open (serverOptions.pop) and fails when
// nothing listens on them.
func newPOPServer(t *testing.T, o serverOptions) *server {
	t.Helper()
	o.pop = true
	s := newServer(t, o)
	// The harness waits for the SMTP port; give the rest of the start-up a moment before calling it a failure.
	for _, p := range []int{s.ports.POP3, s.ports.POP3S, s.ports.POP2} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			c, err := net.DialTimeout("tcp", s.addr(p), 2*time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("nothing listens on the configured POP port %d: %v", p, err)
			}
		}
	}
	return s
}

// caFile is the built-in CA certificate `postern init` created; the server's certificate is for mail.<domain>.
func (s *server) caFile() string { return filepath.Join(s.dir, "data", "ca", "ca.crt") }

// popConn is a raw POP3 client for transcript-style tests: pc.cmd("STAT").ok().
type popConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialPOP(t *testing.T, addr string) *popConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &popConn{t: t, c: c, br: bufio.NewReader(c)}
}

func dialPOPS(t *testing.T, addr string) *popConn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("POP3S handshake with %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &popConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (pc *popConn) cmd(line string) *popConn {
	pc.t.Helper()
	_ = pc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := pc.c.Write([]byte(line + "\r\n")); err != nil {
		pc.t.Fatalf("write %q: %v", line, err)
	}
	return pc
}

func (pc *popConn) line() string {
	pc.t.Helper()
	_ = pc.c.SetReadDeadline(time.Now().Add(15 * time.Second))
	l, err := pc.br.ReadString('\n')
	if err != nil {
		pc.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// ok reads a +OK line and returns the text after it.
func (pc *popConn) ok() string {
	pc.t.Helper()
	l := pc.line()
	if !strings.HasPrefix(l, "+OK") {
		pc.t.Fatalf("got %q, want +OK", l)
	}
	return strings.TrimSpace(strings.TrimPrefix(l, "+OK"))
}

// err reads a -ERR line that contains want.
func (pc *popConn) err(want string) string {
	pc.t.Helper()
	l := pc.line()
	if !strings.HasPrefix(l, "-ERR") || !strings.Contains(l, want) {
		pc.t.Fatalf("got %q, want -ERR with %q", l, want)
	}
	return l
}

// multi reads +OK and the lines of a multi-line response, un-stuffed.
func (pc *popConn) multi() []string {
	pc.t.Helper()
	pc.ok()
	var lines []string
	for l := pc.line(); l != "."; l = pc.line() {
		lines = append(lines, strings.TrimPrefix(l, "."))
	}
	return lines
}

func (pc *popConn) stls() {
	pc.t.Helper()
	pc.cmd("STLS").ok()
	tc := tls.Client(pc.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		pc.t.Fatalf("STLS handshake: %v", err)
	}
	pc.c, pc.br = tc, bufio.NewReader(tc)
}

// poplibScript drives Postern with Python's poplib. Modes:
//
//	check:  110 refuses USER before STLS ([AUTH], no USER/SASL in CAPA), STLS with the built-in CA, USER/PASS,
//	        STAT/LIST/UIDL, RETR of every message with poplib's octet count equal to LIST's size; then 995 with
//	        AUTH PLAIN (poplib has no AUTH helper: _shortcmd sends the raw command) and a wrong password.
//	fetch:  "leave on server": download only the messages whose UIDL is not in the state file, never DELE; print
//	        the number downloaded.
//	delete: DELE every message, RSET, DELE again and QUIT.
const poplibScript = `
import poplib, ssl, sys, base64
mode, host, port, sport, user, pw, ca, state = sys.argv[1:9]
port, sport = int(port), int(sport)
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False  # the certificate names mail.example.test; the chain is still verified

def capa(p):
    return {k.upper(): v for k, v in p.capa().items()}

if mode == "check":
    p = poplib.POP3(host, port, timeout=20)
    c = capa(p)
    assert "STLS" in c, c
    assert "USER" not in c and "SASL" not in c, "password methods offered before TLS: %r" % c
    try:
        p.user(user)
        raise AssertionError("USER accepted before TLS")
    except poplib.error_proto as e:
        assert b"[AUTH]" in e.args[0], e
        print("ok USER refused before TLS:", e)
    p.stls(ctx)
    c = capa(p)
    assert "USER" in c and "STLS" not in c, c
    assert "PLAIN" in c.get("SASL", []), c
    for k in ("TOP", "UIDL", "RESP-CODES", "PIPELINING"):
        assert k in c, (k, c)
    p.user(user)
    p.pass_(pw)
    n, size = p.stat()
    resp, listing, _ = p.list()
    sizes = [int(l.split()[1]) for l in listing]
    assert len(sizes) == n and sum(sizes) == size, (n, size, listing)
    resp, uidls, _ = p.uidl()
    assert len(uidls) == n and all(len(l.split()[1]) == 16 for l in uidls), uidls
    for i in range(1, n + 1):
        resp, lines, octets = p.retr(i)
        assert octets == sizes[i - 1], ("RETR %d: poplib counted %d octets, LIST said %d" % (i, octets, sizes[i - 1]))
        assert resp.startswith(b"+OK %d octets" % sizes[i - 1]), resp
        assert any(l.startswith(b"Subject: ") for l in lines), lines[:10]
        assert b".hidden line" in lines, "dot-stuffed line not restored: %r" % lines
    resp, top, _ = p.top(1, 0)
    assert top[-1] == b"" and any(l.startswith(b"Subject: ") for l in top), top
    p.quit()
    print("ok stls user/pass stat list uidl retr top: %d messages, %d octets" % (n, size))

    p = poplib.POP3_SSL(host, sport, context=ctx, timeout=20)
    p._shortcmd("AUTH PLAIN " + base64.b64encode(("\0%s\0%s" % (user, pw)).encode()).decode())
    assert p.stat()[0] == n
    p.quit()
    print("ok pop3s auth plain")
    p = poplib.POP3_SSL(host, sport, context=ctx, timeout=20)
    try:
        p._shortcmd("AUTH PLAIN " + base64.b64encode(("\0%s\0wrong" % user).encode()).decode())
        raise AssertionError("wrong password accepted")
    except poplib.error_proto as e:
        assert b"[AUTH]" in e.args[0], e
        print("ok wrong password refused:", e)
elif mode == "fetch":
    try:
        seen = set(open(state).read().split())
    except FileNotFoundError:
        seen = set()
    p = poplib.POP3_SSL(host, sport, context=ctx, timeout=20)
    p.user(user)
    p.pass_(pw)
    got = 0
    for l in p.uidl()[1]:
        num, uid = l.decode().split()
        if uid not in seen:
            p.retr(int(num))
            seen.add(uid)
            got += 1
    p.quit()
    open(state, "w").write("\n".join(sorted(seen)))
    print("downloaded", got)
elif mode == "delete":
    p = poplib.POP3(host, port, timeout=20)
    p.stls(ctx)
    p.user(user)
    p.pass_(pw)
    n = p.stat()[0]
    for i in range(1, n + 1):
        p.dele(i)
    assert p.stat()[0] == 0
    p.rset()
    assert p.stat()[0] == n
    for i in range(1, n + 1):
        p.dele(i)
    print(p.quit().decode())
`

func runPoplib(t *testing.T, s *server, mode, state string) string {
	t.Helper()
	out, err := python(t, poplibScript, mode, "127.0.0.1", fmt.Sprint(s.ports.POP3), fmt.Sprint(s.ports.POP3S),
		"alice@example.test", "alice-secret", s.caFile(), state)
	if err != nil {
		t.Fatalf("poplib %s: %v\n%s", mode, err, out)
	}
	return out
}

// popMessage is a test message with a line that needs dot-stuffing.
func popMessage(subject string) string {
	return testMessage(subject, "first line\n.hidden line\nlast line")
}

// TestPOP3Poplib: STLS, POP3S, USER/PASS, AUTH PLAIN, sizes, "leave on server" with UIDL, and deletion.
func TestPOP3Poplib(t *testing.T) {
	s := newPOPServer(t, serverOptions{})
	s.addUser("alice@example.test", "alice-secret")
	for i := range 3 {
		smtpDeliver(t, s, "a@remote.example", "alice@example.test", popMessage(fmt.Sprintf("poplib %d", i)))
	}
	out := runPoplib(t, s, "check", "")
	for _, want := range []string{"ok USER refused before TLS", "ok stls user/pass", "ok pop3s auth plain", "ok wrong password refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("poplib output lacks %q:\n%s", want, out)
		}
	}

	state := filepath.Join(t.TempDir(), "uidls")
	fetch := func(want int) {
		t.Helper()
		if out := runPoplib(t, s, "fetch", state); !strings.Contains(out, fmt.Sprintf("downloaded %d\n", want)) {
			t.Fatalf("leave-on-server session: %s, want %d downloaded", strings.TrimSpace(out), want)
		}
	}
	fetch(3)
	fetch(0)
	smtpDeliver(t, s, "a@remote.example", "alice@example.test", popMessage("poplib new"))
	fetch(1)
	fetch(0)
	s.waitInbox("alice@example.test", 4)

	if out := runPoplib(t, s, "delete", ""); !strings.Contains(out, "+OK") {
		t.Fatalf("delete session: %s", out)
	}
	s.waitInbox("alice@example.test", 0)
}

// fetchmailRun polls alice's maildrop with fetchmail over STLS (110) or implicit TLS (995), verifying the
// certificate against the built-in CA, and delivers what it fetches into dir through an MDA. It returns
// fetchmail's exit code (0: mail fetched, 1: no mail) and its output.
func fetchmailRun(t *testing.T, s *server, dir string, implicit, keep bool) (int, string) {
	t.Helper()
	needTool(t, "fetchmail")
	mda := filepath.Join(dir, "mda.sh")
	maildir := filepath.Join(dir, "mail")
	os.MkdirAll(maildir, 0o755)
	script := fmt.Sprintf("#!/bin/sh\nexec cat > \"%s/$(date +%%s%%N).$$.eml\"\n", maildir)
	if err := os.WriteFile(mda, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	port, tlsMode := s.ports.POP3, `sslproto "TLS1.2+"` // STLS is mandatory with sslproto and no ssl
	if implicit {
		port, tlsMode = s.ports.POP3S, "ssl"
	}
	keepMode := "nokeep"
	if keep {
		keepMode = "keep"
	}
	rc := fmt.Sprintf(`set no bouncemail
set no syslog
poll mail.example.test via 127.0.0.1 service %d protocol POP3 uidl timeout 30
  user "alice@example.test" there with password "alice-secret" is "tester" here
  %s sslcertck sslcertfile "%s" sslcommonname "mail.example.test"
  %s
  mda "%s"
`, port, tlsMode, s.caFile(), keepMode, mda)
	rcFile := filepath.Join(dir, "fetchmailrc")
	if err := os.WriteFile(rcFile, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("fetchmail", "-f", rcFile, "--idfile", filepath.Join(dir, "fetchids"), "-v", "--nodetach")
	cmd.Env = append(os.Environ(), "HOME="+dir, "FETCHMAILHOME="+dir)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("fetchmail: %v", err)
	}
	return code, string(out)
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "mail", "*.eml"))
	return len(m)
}

// TestPOP3Fetchmail: keep mode downloads each message once across runs (UIDL) and leaves them on the server;
// delete mode empties the maildrop.
func TestPOP3Fetchmail(t *testing.T) {
	s := newPOPServer(t, serverOptions{})
	s.addUser("alice@example.test", "alice-secret")
	for i := range 2 {
		smtpDeliver(t, s, "a@remote.example", "alice@example.test", popMessage(fmt.Sprintf("fetchmail %d", i)))
	}
	dir := t.TempDir()
	for i, step := range []struct {
		implicit bool
		wantCode int
		wantMail int
	}{
		{false, 0, 2}, // STLS: both messages
		{false, 1, 2}, // nothing new: fetchmail exits 1
		{true, 1, 2},  // POP3S, same idfile: still nothing new
	} {
		code, out := fetchmailRun(t, s, dir, step.implicit, true)
		if code != step.wantCode || countFiles(t, dir) != step.wantMail {
			t.Fatalf("keep run %d: exit %d, %d messages delivered; want %d, %d\n%s", i, code, countFiles(t, dir),
				step.wantCode, step.wantMail, out)
		}
	}
	s.waitInbox("alice@example.test", 2)
	files, _ := filepath.Glob(filepath.Join(dir, "mail", "*.eml"))
	b, _ := os.ReadFile(files[0])
	if !strings.Contains(string(b), "\n.hidden line") || !strings.Contains(string(b), "Subject: fetchmail") {
		t.Errorf("fetched message lost its content or stuffing was not undone:\n%s", b)
	}

	smtpDeliver(t, s, "a@remote.example", "alice@example.test", popMessage("fetchmail 2"))
	del := t.TempDir()
	if code, out := fetchmailRun(t, s, del, true, false); code != 0 || countFiles(t, del) != 3 {
		t.Fatalf("delete run: exit %d, %d messages; want 0, 3\n%s", code, countFiles(t, del), out)
	}
	s.waitInbox("alice@example.test", 0)
}

// curlPOP runs curl against alice's maildrop with certificate verification against the built-in CA.
func curlPOP(t *testing.T, s *server, url string, args ...string) (string, error) {
	t.Helper()
	needTool(t, "curl")
	port := s.ports.POP3
	if strings.HasPrefix(url, "pop3s:") {
		port = s.ports.POP3S
	}
	full := append([]string{"-sS", "--max-time", "30", "--cacert", s.caFile(),
		"--resolve", fmt.Sprintf("mail.example.test:%d:127.0.0.1", port),
		"-u", "alice@example.test:alice-secret", fmt.Sprintf(url, port)}, args...)
	out, err := exec.Command("curl", full...).CombinedOutput()
	return string(out), err
}

// TestPOP3Curl: curl's pop3:// (with --ssl-reqd: STLS) and pop3s://, listing, retrieval, UIDL and DELE; without
// TLS curl's login is refused.
func TestPOP3Curl(t *testing.T) {
	s := newPOPServer(t, serverOptions{})
	s.addUser("alice@example.test", "alice-secret")
	for i := range 2 {
		smtpDeliver(t, s, "a@remote.example", "alice@example.test", popMessage(fmt.Sprintf("curl %d", i)))
	}
	list, err := curlPOP(t, s, "pop3://mail.example.test:%d/", "--ssl-reqd")
	if err != nil || !regexp.MustCompile(`(?m)^1 \d+\r?\n2 \d+\r?$`).MatchString(list) {
		t.Fatalf("curl pop3:// LIST: %v\n%q", err, list)
	}
	msg, err := curlPOP(t, s, "pop3s://mail.example.test:%d/2")
	if err != nil || !strings.Contains(msg, "Subject: curl 1") || !strings.Contains(msg, "\n.hidden line") {
		t.Fatalf("curl pop3s:// RETR 2: %v\n%s", err, msg)
	}
	var size int
	fmt.Sscanf(strings.Split(strings.TrimSpace(list), "\n")[1], "2 %d", &size)
	if len(msg) != size {
		t.Errorf("curl received %d octets of message 2, LIST said %d", len(msg), size)
	}
	uidl, err := curlPOP(t, s, "pop3s://mail.example.test:%d/", "-X", "UIDL")
	if err != nil || !regexp.MustCompile(`(?m)^1 [0-9A-F]{16}\r?\n2 [0-9A-F]{16}\r?$`).MatchString(uidl) {
		t.Fatalf("curl UIDL: %v\n%q", err, uidl)
	}
	if out, err := curlPOP(t, s, "pop3s://mail.example.test:%d/1", "-X", "DELE", "-I"); err != nil {
		t.Fatalf("curl DELE: %v\n%s", err, out)
	}
	s.waitInbox("alice@example.test", 1)
	if out, err := curlPOP(t, s, "pop3://mail.example.test:%d/"); err == nil {
		t.Fatalf("curl logged in without TLS:\n%s", out)
	}
}

// TestPOP3Policy: passwords refused before STLS, [IN-USE] for a second session (POP3 or POP2, one lock table),
// a dropped session deletes nothing, and the limits on bad input.
func TestPOP3Policy(t *testing.T) {
	s := newPOPServer(t, serverOptions{})
	s.addUser("alice@example.test", "alice-secret")
	smtpDeliver(t, s, "a@remote.example", "alice@example.test", popMessage("policy"))

	pc := dialPOP(t, s.addr(s.ports.POP3))
	pc.ok()
	pc.cmd("USER alice@example.test").err("[AUTH]")
	pc.cmd("AUTH PLAIN " + plain("alice@example.test", "alice-secret")).err("[AUTH]")
	pc.cmd(strings.Repeat("X", 300)).err("too long")
	pc.cmd("STAT").err("not valid in this state")
	pc.stls()
	pc.cmd("USER alice@example.test").ok()
	pc.cmd("PASS alice-secret").ok()
	pc.cmd("DELE 1").ok()

	other := dialPOPS(t, s.addr(s.ports.POP3S))
	other.ok()
	other.cmd("AUTH PLAIN " + plain("alice@example.test", "alice-secret")).err("[IN-USE]")
	other.cmd("QUIT").ok()

	pc.c.Close() // dropped with a DELE pending
	s.waitInbox("alice@example.test", 1)

	// Three failed logins end the connection.
	bad := dialPOPS(t, s.addr(s.ports.POP3S))
	bad.ok()
	for i := range 3 {
		bad.cmd("USER alice@example.test").ok()
		l := bad.cmd("PASS wrong").err("[AUTH]")
		if i == 2 && !strings.Contains(l, "closing") {
			t.Errorf("third failure: %q", l)
		}
	}
	_ = bad.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bad.br.ReadByte(); err == nil {
		t.Error("connection open after three failed logins")
	}
}

// imapPopScript checks that IMAP and POP3 agree on INBOX: POP3's UIDL is %08X%08X of IMAP's UID and
// UIDVALIDITY, sizes agree, an IMAP expunge disappears from the next POP3 session, a POP3 DELE+QUIT from IMAP,
// and RETR leaves \Seen (TOP does not).
const imapPopScript = `
import imaplib, poplib, ssl, sys, re
host, iport, pport, user, pw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE

def imap_state():
    m = imaplib.IMAP4_SSL(host, iport, ssl_context=ctx, timeout=20)
    m.login(user, pw)
    typ, data = m.status("INBOX", "(UIDVALIDITY)")
    uv = int(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1))
    m.select("INBOX")
    typ, data = m.uid("SEARCH", None, "ALL")
    uids = [int(x) for x in data[0].split()]
    info = {}
    if uids:
        typ, data = m.uid("FETCH", "1:*", "(FLAGS RFC822.SIZE)")
        for d in data:
            d = d.decode()
            uid = int(re.search(r"UID (\d+)", d).group(1))
            info[uid] = (int(re.search(r"RFC822\.SIZE (\d+)", d).group(1)), "\\Seen" in d)
    return m, uv, uids, info

def pop():
    p = poplib.POP3_SSL(host, pport, context=ctx, timeout=20)
    p.user(user); p.pass_(pw)
    uidls = [l.decode().split()[1] for l in p.uidl()[1]]
    sizes = [int(l.split()[1]) for l in p.list()[1]]
    return p, uidls, sizes

def agree(step):
    m, uv, uids, info = imap_state()
    m.logout()
    p, uidls, sizes = pop()
    p.quit()
    want = ["%08X%08X" % (u, uv) for u in uids]
    assert uidls == want, (step, uidls, want)
    assert sizes == [info[u][0] for u in uids], (step, sizes, info)
    print("ok agree after %s: %d messages" % (step, len(uids)))
    return uv, uids, info

uv, uids, info = agree("delivery")
assert len(uids) == 4, uids

m, _, _, _ = imap_state()
m.uid("STORE", str(uids[1]), "+FLAGS", "(\\Deleted)")
m.expunge()
m.logout()
agree("imap expunge")

p, uidls, _ = pop()
p.retr(1)          # uids[0]: \Seen at QUIT
p.top(3, 0)        # uids[3]: not \Seen
p.dele(2)          # uids[2]
p.quit()
_, uids2, info = agree("pop3 dele")
assert uids2 == [uids[0], uids[3]], (uids2, uids)
assert info[uids[0]][1], "RETR did not leave \\Seen: %r" % info
assert not info[uids[3]][1], "TOP set \\Seen: %r" % info
print("ok seen flags")
`

// TestIMAPAndPOP3AgreeOnInbox: deletes from each side are seen by the other, and both name messages alike.
func TestIMAPAndPOP3AgreeOnInbox(t *testing.T) {
	s := newPOPServer(t, serverOptions{imap: true})
	requireIMAP(t, s)
	s.addUser("alice@example.test", "alice-secret")
	for i := range 4 {
		smtpDeliver(t, s, "a@remote.example", "alice@example.test", popMessage(fmt.Sprintf("agree %d", i)))
	}
	out, err := python(t, imapPopScript, "127.0.0.1", fmt.Sprint(s.ports.IMAPS), fmt.Sprint(s.ports.POP3S),
		"alice@example.test", "alice-secret")
	if err != nil {
		t.Fatalf("imaplib/poplib: %v\n%s", err, out)
	}
	for _, want := range []string{"ok agree after imap expunge", "ok agree after pop3 dele: 2 messages", "ok seen flags"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	s.waitInbox("alice@example.test", 2)
}
