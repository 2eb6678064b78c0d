//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
)

// imaplibScript drives Postern with Python's imaplib (a client Postern did not write): STARTTLS with
// LOGINDISABLED before TLS (RFC 9051 6.2.1, 6.2.3), IMAPS, LOGIN, AUTHENTICATE PLAIN, APPEND, SELECT, FETCH,
// STORE, SEARCH, EXPUNGE, UID MOVE (RFC 6851) and IDLE (RFC 2177). Each step prints "ok <step>"; an assertion
// error ends it with a traceback.
const imaplibScript = `
import imaplib, ssl, sys, time
host, port, tlsport, user, pw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE

def caps(m):
    typ, data = m.capability()
    assert typ == "OK", (typ, data)
    return data[0].decode().upper().split()

# 143: LOGINDISABLED before TLS, LOGIN refused, then STARTTLS.
m = imaplib.IMAP4(host, port, timeout=20)
c = caps(m)
assert "STARTTLS" in c, c
assert "LOGINDISABLED" in c, "LOGINDISABLED not advertised before TLS: %r" % c
assert not any(x.startswith("AUTH=") for x in c), "AUTH= advertised before TLS: %r" % c
try:
    m.login(user, pw)
    raise AssertionError("LOGIN accepted before TLS")
except imaplib.IMAP4.error as e:
    print("ok login refused before TLS:", e)
typ, data = m.starttls(ssl_context=ctx)
assert typ == "OK", (typ, data)
c = caps(m)
assert "LOGINDISABLED" not in c, "LOGINDISABLED after TLS: %r" % c
assert "AUTH=PLAIN" in c, "AUTH=PLAIN missing after TLS: %r" % c
typ, data = m.login(user, pw)
assert typ == "OK", (typ, data)
print("ok starttls login")
m.logout()

# 993: implicit TLS, AUTHENTICATE PLAIN.
m = imaplib.IMAP4_SSL(host, tlsport, ssl_context=ctx, timeout=20)
typ, data = m.authenticate("PLAIN", lambda _: ("\0%s\0%s" % (user, pw)).encode())
assert typ == "OK", (typ, data)
print("ok imaps authenticate plain")
try:
    imaplib.IMAP4_SSL(host, tlsport, ssl_context=ctx, timeout=20).authenticate("PLAIN", lambda _: ("\0%s\0wrong" % user).encode())
    raise AssertionError("AUTHENTICATE PLAIN accepted a wrong password")
except imaplib.IMAP4.error as e:
    print("ok wrong password refused:", e)

# APPEND three messages, with flags and an internal date.
for i, flags in enumerate(["", "(\\Seen)", "(\\Flagged)"]):
    msg = ("From: a@remote.example\r\nTo: %s\r\nSubject: imaplib %d\r\nMessage-ID: <py%d@remote.example>\r\n\r\nbody %d\r\n" % (user, i, i, i)).encode()
    typ, data = m.append("INBOX", flags, imaplib.Time2Internaldate(time.time() - 86400 * i), msg)
    assert typ == "OK", (typ, data)
    assert b"APPENDUID" in data[0], "no APPENDUID (RFC 4315): %r" % data
print("ok append")

typ, data = m.select("INBOX")
assert typ == "OK" and data[0] == b"3", (typ, data)
typ, data = m.search(None, "UNSEEN")
assert typ == "OK" and data[0].split() == [b"1", b"3"], (typ, data)
typ, data = m.search(None, "FLAGGED")
assert data[0].split() == [b"3"], data
typ, data = m.search(None, '(SUBJECT "imaplib 1")')
assert data[0].split() == [b"2"], data
typ, data = m.fetch("1", "(FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY[TEXT])")
assert typ == "OK", (typ, data)
flat = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
assert b"Subject: imaplib 0" in flat and b"body 0" in flat, data
typ, data = m.fetch("1", "(FLAGS)")
assert b"\\Seen" in data[0], "BODY[TEXT] did not set \\Seen: %r" % data
print("ok select search fetch")

typ, data = m.store("2", "+FLAGS", "(\\Deleted $Work)")
assert typ == "OK" and b"\\Deleted" in data[0] and b"$Work" in data[0], (typ, data)
typ, data = m.search(None, "KEYWORD", "$Work")
assert data[0].split() == [b"2"], data
typ, data = m.expunge()
assert typ == "OK" and data == [b"2"], (typ, data)
typ, data = m.search(None, "ALL")
assert data[0].split() == [b"1", b"2"], data
print("ok store expunge")

# UID MOVE the last message to Trash.
typ, data = m.uid("SEARCH", None, "ALL")
uids = data[0].split()
typ, data = m.uid("MOVE", uids[-1], "Trash")
assert typ == "OK", (typ, data)
typ, data = m.status("Trash", "(MESSAGES)")
assert b"MESSAGES 1" in data[0], data
typ, data = m.search(None, "ALL")
assert data[0].split() == [b"1"], data
print("ok uid move")

# IDLE (imaplib before 3.14 has no idle(): speak it by hand), woken by an APPEND from another session.
tag = m._new_tag()
m.send(tag + b" IDLE\r\n")
line = m.readline()
assert line.startswith(b"+"), line
other = imaplib.IMAP4_SSL(host, tlsport, ssl_context=ctx, timeout=20)
other.login(user, pw)
other.append("INBOX", "", None, b"Subject: wake up\r\n\r\nnew\r\n")
other.logout()
m.sock.settimeout(30)
line = m.readline()
while b"EXISTS" not in line:
    assert line.startswith(b"* "), line
    line = m.readline()
assert line.strip() == b"* 2 EXISTS", line
m.send(b"DONE\r\n")
line = m.readline()
while not line.startswith(tag):
    line = m.readline()
assert line.startswith(tag + b" OK"), line
print("ok idle")
m.close()
m.logout()
print("ok all")
`

// TestIMAPPythonImaplib runs imaplibScript against 143 (STARTTLS) and 993 (implicit TLS).
func TestIMAPPythonImaplib(t *testing.T) {
	s := newIMAPServer(t, serverOptions{})
	s.addUser("py@example.test", "py-secret-1")
	out, err := python(t, imaplibScript, "127.0.0.1", fmt.Sprint(s.ports.IMAP), fmt.Sprint(s.ports.IMAPS),
		"py@example.test", "py-secret-1")
	t.Logf("imaplib:\n%s", out)
	if err != nil || !strings.Contains(out, "ok all") {
		t.Fatalf("python imaplib: %v", err)
	}
}
