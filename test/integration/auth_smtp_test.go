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

// scramCorePy is a SCRAM client (RFC 5802 3 and 7, RFC 7677) in Python, written from the RFCs with hashlib and
// hmac only. It first proves itself on RFC 7677's and RFC 5802's test vectors; scramPy (SMTP) and scramIMAPPy
// (IMAP) then log in with it, checking the server's signature.
const scramCorePy = `
import base64, hashlib, hmac, imaplib, smtplib, ssl, sys
b64 = lambda b: base64.b64encode(b).decode()

def final(hname, password, gs2, first_bare, server_first, cbdata=b""):
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salt, iters = base64.b64decode(attrs["s"]), int(attrs["i"])
    salted = hashlib.pbkdf2_hmac(hname, password.encode(), salt, iters)
    client_key = hmac.new(salted, b"Client Key", hname).digest()
    stored = hashlib.new(hname, client_key).digest()
    without_proof = "c=" + b64(gs2.encode() + cbdata) + ",r=" + attrs["r"]
    auth_msg = ",".join([first_bare, server_first, without_proof]).encode()
    sig = hmac.new(stored, auth_msg, hname).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    server_key = hmac.new(salted, b"Server Key", hname).digest()
    return without_proof + ",p=" + b64(proof), "v=" + b64(hmac.new(server_key, auth_msg, hname).digest())

# RFC 7677 3 and RFC 5802 5 (user "user", password "pencil").
got = final("sha256", "pencil", "n,,", "n=user,r=rOprNGfwEbeRWgbNEkqO",
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
assert got == ("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="), got
got = final("sha1", "pencil", "n,,", "n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
assert got == ("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="), got

`

// scramPy logs in over SMTP submission (STARTTLS, server certificate verified against `postern ca cert`) with
// smtplib; for -PLUS it binds to the server certificate (tls-server-end-point, RFC 5929 4.1).
const scramPy = scramCorePy + `
port, cafile, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
mechs = sys.argv[5].split(",")

ctx = ssl.create_default_context(cafile=cafile)
for mech in mechs:
    expect_fail = mech.startswith("!")
    mech = mech.lstrip("!")
    hname = "sha1" if mech.startswith("SCRAM-SHA-1") else "sha256"
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    s.starttls(context=ctx)
    s.ehlo("client.test")
    offered = s.esmtp_features["auth"].split()
    assert mech in offered, (mech, offered)
    gs2, cbdata = "n,,", b""
    if mech.endswith("-PLUS"):
        cert = s.sock.getpeercert(binary_form=True)
        gs2, cbdata = "p=tls-server-end-point,,", hashlib.sha256(cert).digest()  # ECDSA with SHA-256
    first_bare = "n=" + user.replace("=", "=3D").replace(",", "=2C") + ",r=" + b64(ssl.RAND_bytes(18))
    state = {}
    def step(challenge=None):
        if challenge is None:
            return gs2 + first_bare
        challenge = challenge.decode()
        if "v" not in state:
            msg, state["v"] = final(hname, password, gs2, first_bare, challenge, cbdata)
            return msg
        assert challenge == state["v"], ("server signature", challenge, state["v"])
        state["verified"] = True
        return ""
    try:
        code, resp = s.auth(mech, step)
        assert not expect_fail, (mech, "logged in with a wrong password")
        assert code == 235 and state.get("verified"), (code, resp, state)
        s.sendmail(user, [user], "Subject: " + mech + "\r\n\r\nsent after " + mech + "\r\n")
        print(mech, "ok")
    except smtplib.SMTPAuthenticationError as e:
        assert expect_fail and e.smtp_code == 535, (mech, e)
        print(mech, "refused")
    s.quit()
`

// TestAuthSCRAMWithPython: SCRAM-SHA-256, SCRAM-SHA-1 and SCRAM-SHA-256-PLUS from an independent client, which
// checks the server's signature; a wrong password is refused.
func TestAuthSCRAMWithPython(t *testing.T) {
	s := newServer(t, serverOptions{})
	s.setAuth(map[string]string{"failure_delay": `"10ms"`})
	s.addUser("alice@example.test", "pencil, not a pen")
	mechs := "SCRAM-SHA-256,SCRAM-SHA-1,SCRAM-SHA-256-PLUS,SCRAM-SHA-1-PLUS"
	out, err := python(t, scramPy, fmt.Sprint(s.ports.Submission), s.trustedCA(), "alice@example.test", "pencil, not a pen", mechs)
	if err != nil || strings.Count(out, " ok") != 4 {
		t.Fatalf("python SCRAM client: %v\n%s\nserver log:\n%s", err, out, s.stderr)
	}
	s.waitInbox("alice@example.test", 4)
	out, err = python(t, scramPy, fmt.Sprint(s.ports.Submission), s.trustedCA(), "alice@example.test", "pencil", "!SCRAM-SHA-256")
	if err != nil || !strings.Contains(out, "refused") {
		t.Fatalf("wrong password: %v\n%s", err, out)
	}
	if log := s.stderr.String(); strings.Contains(log, "pencil") {
		t.Errorf("the password reached the log:\n%s", log)
	}
}

// TestAuthCRAMMD5Smtplib: with [auth] cram_md5 on, Python's smtplib logs in with CRAM-MD5 (RFC 2195); with it off
// (the default) CRAM-MD5 is not offered.
func TestAuthCRAMMD5Smtplib(t *testing.T) {
	s := newServer(t, serverOptions{})
	script := `
import smtplib, ssl, sys
port, cafile, want = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
s.starttls(context=ssl.create_default_context(cafile=cafile))
s.ehlo("client.test")
offered = s.esmtp_features["auth"].split()
if want == "off":
    assert "CRAM-MD5" not in offered, offered
    print("not offered")
    sys.exit(0)
assert "CRAM-MD5" in offered, offered
s.user, s.password = "bob@example.test", "bob's secret"
code, resp = s.auth("CRAM-MD5", s.auth_cram_md5, initial_response_ok=False)
assert code == 235, (code, resp)
s.sendmail("bob@example.test", ["bob@example.test"], "Subject: cram\r\n\r\nhi\r\n")
s.quit()
print("cram ok")
`
	if out, err := python(t, script, fmt.Sprint(s.ports.Submission), s.trustedCA(), "off"); err != nil {
		t.Fatalf("default config: %v\n%s", err, out)
	}
	s.setAuth(map[string]string{"cram_md5": "true"})
	s.addUser("bob@example.test", "bob's secret") // stored with its CRAM-MD5 secret: the CLI reads cram_md5 too
	if out, err := python(t, script, fmt.Sprint(s.ports.Submission), s.trustedCA(), "on"); err != nil || !strings.Contains(out, "cram ok") {
		t.Fatalf("CRAM-MD5: %v\n%s\nserver log:\n%s", err, out, s.stderr)
	}
	s.waitInbox("bob@example.test", 1)
}

// authDialFrom opens an SMTP connection from a chosen loopback address (127.0.0.2 is as local as 127.0.0.1 on Linux).
func authDialFrom(t *testing.T, local, addr string) *conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot connect from %s: %v", local, err)
	}
	t.Cleanup(func() { c.Close() })
	tc := &conn{t: t, c: c, br: bufio.NewReader(c)}
	tc.expect(220)
	tc.send("EHLO client.test")
	tc.expect(250)
	tc.starttls()
	tc.send("EHLO client.test")
	tc.expect(250)
	return tc
}

// TestAuthLockoutTwoIPs: 20 wrong passwords from 127.0.0.1 lock it out of authentication (454 4.7.0, even with the
// right password) for lockout_duration, while the right password from 127.0.0.2 still logs in; each failure is one
// log line that the shipped fail2ban filter matches.
func TestAuthLockoutTwoIPs(t *testing.T) {
	s := newServer(t, serverOptions{})
	s.setAuth(map[string]string{"lockout_failures": "10", "lockout_window": `"10m"`, "lockout_duration": `"3s"`,
		"failure_delay": `"10ms"`})
	s.addUser("alice@example.test", "alice-secret")
	tc := authDialFrom(t, "127.0.0.1", s.addr(s.ports.Submission))
	codes := map[int]int{}
	for i := 0; i < 20; i++ {
		tc.send("AUTH PLAIN " + plain("alice@example.test", fmt.Sprintf("wrong-%d", i)))
		code, lines := tc.reply()
		codes[code]++
		if i < 10 && code != 535 || i >= 10 && code != 454 {
			t.Fatalf("attempt %d: %d %q", i+1, code, lines)
		}
		if code == 421 { // the session's error limit; the lockout is per address, so reconnect
			tc = authDialFrom(t, "127.0.0.1", s.addr(s.ports.Submission))
		}
	}
	tc.send("AUTH PLAIN " + plain("alice@example.test", "alice-secret"))
	if code, l := tc.reply(); code != 454 {
		t.Fatalf("the right password from the locked-out address: %d %q", code, l)
	}
	other := authDialFrom(t, "127.0.0.2", s.addr(s.ports.Submission))
	other.send("AUTH PLAIN " + plain("alice@example.test", "alice-secret"))
	if code, l := other.reply(); code != 235 {
		t.Fatalf("the right password from 127.0.0.2: %d %q", code, l)
	}
	// After lockout_duration the address may try again (polled: how long this takes is not the point).
	deadline := time.Now().Add(30 * time.Second)
	for {
		tc = authDialFrom(t, "127.0.0.1", s.addr(s.ports.Submission))
		tc.send("AUTH PLAIN " + plain("alice@example.test", "alice-secret"))
		code, l := tc.reply()
		if code == 235 {
			break
		}
		if code != 454 || time.Now().After(deadline) {
			t.Fatalf("after the lockout: %d %q", code, l)
		}
		time.Sleep(500 * time.Millisecond)
	}
	checkFail2ban(t, s.stderr.String(), "127.0.0.1", 10)
}

// checkFail2ban runs fail2ban-regex with contrib/fail2ban/filter.d/postern.conf over a real server log and
// checks that it finds want failures, all from ip. Without fail2ban the Go test of the same pattern in
// internal/auth (TestFailureLogLine) stands in, unless CI=true.
func checkFail2ban(t *testing.T, log, ip string, want int) {
	t.Helper()
	bin := needTool(t, "fail2ban-regex")
	dir := t.TempDir()
	filterDir := filepath.Join(dir, "filter.d")
	if err := os.MkdirAll(filterDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{
		"../../contrib/fail2ban/filter.d/postern.conf": "postern.conf",
		"/etc/fail2ban/filter.d/common.conf":           "common.conf", // the filter includes it, as installed
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(filterDir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logFile := filepath.Join(dir, "postern.log")
	if err := os.WriteFile(logFile, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-v", logFile, filepath.Join(filterDir, "postern.conf")).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Failregex: (\d+) total`).FindSubmatch(out)
	if m == nil || string(m[1]) != fmt.Sprint(want) {
		t.Fatalf("fail2ban-regex found %s failures, want %d:\n%s\nlog:\n%s", m, want, out, log)
	}
	t.Logf("fail2ban-regex matches %s failure lines", m[1])
	for _, line := range regexp.MustCompile(`(?m)^\|\s+(\S+)\s+\w{3} \w{3} `).FindAllSubmatch(out, -1) {
		if string(line[1]) != ip {
			t.Errorf("fail2ban-regex would ban %s; want only %s", line[1], ip)
		}
	}
}

// externalPy logs in with SASL EXTERNAL (RFC 4422 appendix A) with a client certificate over STARTTLS.
const externalPy = `
import smtplib, ssl, sys
port, cafile, cert, key, authzid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile)
if cert:
    ctx.load_cert_chain(cert, key)
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
s.starttls(context=ctx)
s.ehlo("client.test")
offered = s.esmtp_features["auth"].split()
if not cert:
    assert "EXTERNAL" not in offered, offered
    print("not offered")
    sys.exit(0)
assert "EXTERNAL" in offered, offered
try:
    code, resp = s.auth("EXTERNAL", lambda challenge=None: authzid)
    print("external", code)
    s.sendmail("carol@example.test", ["carol@example.test"], "Subject: external\r\n\r\nhi\r\n")
except smtplib.SMTPAuthenticationError as e:
    print("external refused", e.smtp_code)
s.quit()
`

// TestAuthExternalClientCert: with auth.client_ca_file naming the built-in CA, a client certificate that CA signed
// for carol@example.test (made with openssl, as the seeds make certificates) logs in with EXTERNAL; an authzid
// naming someone else is refused; without a certificate EXTERNAL is not offered.
func TestAuthExternalClientCert(t *testing.T) {
	s := newServer(t, serverOptions{})
	crt, key := clientCertSetup(t, s, "carol@example.test")
	port := fmt.Sprint(s.ports.Submission)
	for _, c := range []struct{ cert, key, authzid, want string }{
		{"", "", "", "not offered"},
		{crt, key, "", "external 235"},
		{crt, key, "Carol@Example.TEST", "external 235"},
		{crt, key, "alice@example.test", "external refused 535"},
	} {
		out, err := python(t, externalPy, port, s.trustedCA(), c.cert, c.key, c.authzid)
		if err != nil || !strings.Contains(out, c.want) {
			t.Fatalf("cert %q authzid %q: %v\n%s\nwant %q\nserver log:\n%s", c.cert, c.authzid, err, out, c.want, s.stderr)
		}
	}
	s.waitInbox("carol@example.test", 2)
}

// TestAuthMechanismsOffered: over TLS the submission port offers the SCRAM -PLUS variants first; before TLS no
// AUTH at all (allow_plaintext is off).
func TestAuthMechanismsOffered(t *testing.T) {
	s := newServer(t, serverOptions{})
	tc := dial(t, s.addr(s.ports.Submission))
	tc.expect(220)
	tc.send("EHLO client.test")
	if ehlo := tc.expect(250); strings.Contains(ehlo, "AUTH") {
		t.Fatalf("AUTH offered before TLS:\n%s", ehlo)
	}
	tc.starttls()
	tc.send("EHLO client.test")
	ehlo := tc.expect(250)
	if !strings.Contains(ehlo, "AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN") {
		t.Errorf("EHLO after STARTTLS:\n%s", ehlo)
	}
	tls13 := tc.c.(*tls.Conn).ConnectionState().Version == tls.VersionTLS13
	if !tls13 {
		t.Errorf("STARTTLS did not negotiate TLS 1.3")
	}
}
