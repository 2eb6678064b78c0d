//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
)

// scramIMAPPy logs in over IMAP with imaplib: IMAPS (port argv[1]) or STARTTLS on 143 (argv[2]); each mechanism
// given as "MECH@imaps" or "MECH@starttls". The server's signature is checked; -PLUS binds to the server
// certificate (tls-server-end-point, RFC 5929 4.1). "CRAM-MD5@..." uses imaplib's own CRAM-MD5; "!MECH" expects
// refusal.
const scramIMAPPy = scramCorePy + `
imaps, imap, cafile, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile)
for spec in sys.argv[6].split(","):
    mech, how = spec.split("@")
    expect_fail = mech.startswith("!")
    mech = mech.lstrip("!")
    if how == "imaps":
        m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx, timeout=30)
    else:
        m = imaplib.IMAP4("127.0.0.1", imap, timeout=30)
        assert "LOGINDISABLED" in m.capabilities and not any(c.startswith("AUTH=") for c in m.capabilities), m.capabilities
        m.starttls(ssl_context=ctx)
    assert "AUTH=" + mech in m.capabilities, (mech, m.capabilities)
    try:
        if mech == "CRAM-MD5":
            typ, _ = m.login_cram_md5(user, password)
        else:
            hname = "sha1" if mech.startswith("SCRAM-SHA-1") else "sha256"
            gs2, cbdata = "n,,", b""
            if mech.endswith("-PLUS"):
                cert = m.sock.getpeercert(binary_form=True)
                gs2, cbdata = "p=tls-server-end-point,,", hashlib.sha256(cert).digest()
            first_bare = "n=" + user + ",r=" + b64(ssl.RAND_bytes(18))
            state = {}
            def step(challenge):
                if "first" not in state:
                    state["first"] = True
                    return gs2 + first_bare
                challenge = challenge.decode()
                if "v" not in state:
                    msg, state["v"] = final(hname, password, gs2, first_bare, challenge, cbdata)
                    return msg
                assert challenge == state["v"], ("server signature", challenge, state["v"])
                state["verified"] = True
                return b""
            typ, _ = m.authenticate(mech, step)
            assert state.get("verified"), state
        assert not expect_fail, (mech, "logged in with a wrong password")
        typ, data = m.select("INBOX")
        assert typ == "OK", (typ, data)
        print(mech, how, "ok")
    except imaplib.IMAP4.error as e:
        assert expect_fail, (mech, how, e)
        print(mech, how, "refused")
    try:
        m.logout()
    except Exception:
        pass
`

// TestIMAPSASLMechanisms: the IMAP server offers the SASL mechanisms of internal/auth (issue 5) — SCRAM with and
// without channel binding on IMAPS and after STARTTLS, CRAM-MD5 when enabled — driven by Python's imaplib; none
// before STARTTLS (LOGINDISABLED); a wrong password is refused.
func TestIMAPSASLMechanisms(t *testing.T) {
	s := newServer(t, serverOptions{imap: true})
	s.setAuth(map[string]string{"failure_delay": `"10ms"`, "cram_md5": "true"})
	s.addUser("alice@example.test", "pencil, not a pen")
	run := func(password, specs string) string {
		out, err := python(t, scramIMAPPy, fmt.Sprint(s.ports.IMAPS), fmt.Sprint(s.ports.IMAP), s.trustedCA(),
			"alice@example.test", password, specs)
		if err != nil {
			t.Fatalf("python IMAP SASL client: %v\n%s\nserver log:\n%s", err, out, s.stderr)
		}
		return out
	}
	out := run("pencil, not a pen", "SCRAM-SHA-256@imaps,SCRAM-SHA-256-PLUS@imaps,SCRAM-SHA-1-PLUS@starttls,SCRAM-SHA-1@starttls,CRAM-MD5@imaps")
	if strings.Count(out, " ok") != 5 {
		t.Fatalf("logins:\n%s", out)
	}
	if out := run("pencil", "!SCRAM-SHA-256@imaps"); !strings.Contains(out, "refused") {
		t.Fatalf("wrong password:\n%s", out)
	}
}

// TestIMAPExternalClientCert: AUTHENTICATE EXTERNAL over IMAPS with a client certificate from the built-in CA
// that names the user (RFC 4422 appendix A).
func TestIMAPExternalClientCert(t *testing.T) {
	s := newServer(t, serverOptions{imap: true})
	crt, key := clientCertSetup(t, s, "carol@example.test")
	const py = `
import imaplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
m = imaplib.IMAP4_SSL("127.0.0.1", int(sys.argv[1]), ssl_context=ctx, timeout=30)
assert "AUTH=EXTERNAL" in m.capabilities, m.capabilities
typ, _ = m.authenticate("EXTERNAL", lambda c: b"")
typ, data = m.select("INBOX")
print("external", typ)
m.logout()
`
	out, err := python(t, py, fmt.Sprint(s.ports.IMAPS), s.trustedCA(), crt, key)
	if err != nil || !strings.Contains(out, "external OK") {
		t.Fatalf("EXTERNAL over IMAPS: %v\n%s\nserver log:\n%s", err, out, s.stderr)
	}
}
