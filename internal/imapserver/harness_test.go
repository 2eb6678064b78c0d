package imapserver

import (
	"net/netip"

	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/postern/postern/internal/auth"
	"github.com/postern/postern/internal/store"
	"github.com/postern/postern/internal/store/sqlite"
)

// The harness runs the real server over TCP on loopback, on the real SQLite store, and talks to it with a
// transcript client: tc.cmd("a1 SELECT INBOX").ok().

func selfSigned(t testing.TB) *tls.Config {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imap.example.org"},
		DNSNames: []string{"imap.example.org"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

type env struct {
	t     testing.TB
	st    *sqlite.Store
	srv   *Server
	ln    net.Listener
	user  store.User
	opts  Options
	inbox store.Mailbox
}

const testPass = "secret"

// newEnv starts a server for alice@example.org (password "secret"); mod may change the options.
func newEnv(t testing.TB, mod func(*Options)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: dir + "/db.sqlite", BlobDir: dir + "/blobs"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.AddDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	u, err := st.AddUser(ctx, store.User{Address: "alice@example.org", PasswordHash: "test"})
	if err != nil {
		t.Fatal(err)
	}
	as := &testAuth{users: st}
	o := Options{Hostname: "imap.example.org", TLSConfig: selfSigned(t), AllowPlaintextAuth: true,
		MaxMessageBytes: 1 << 20, Store: st, Auth: as}
	if mod != nil {
		mod(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.ImplicitTLS {
		ln = tls.NewListener(ln, o.TLSConfig)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	inbox, err := st.GetMailbox(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, st: st, srv: srv, ln: ln, user: u, opts: o, inbox: inbox}
}

// deliver puts a message into a mailbox of alice through the store, as the SMTP delivery agent would.
func (e *env) deliver(mailbox, msg string, flags ...string) uint32 {
	e.t.Helper()
	ctx := context.Background()
	mb, err := e.st.GetMailbox(ctx, e.user.ID, mailbox)
	if err != nil {
		e.t.Fatal(err)
	}
	ref, err := e.st.Blobs().Put(ctx, strings.NewReader(msg))
	if err != nil {
		e.t.Fatal(err)
	}
	meta, _ := parseMetaBytes([]byte(msg))
	res, err := e.st.Append(ctx, store.AppendRequest{MailboxID: mb.ID, Blob: ref, Flags: flags,
		InternalDate: time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC), Meta: meta})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.UID
}

// tconn is a transcript client.
type tconn struct {
	t    testing.TB
	c    net.Conn
	br   *bufio.Reader
	next int
}

func (e *env) dial() *tconn {
	e.t.Helper()
	c, err := net.Dial("tcp", e.ln.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	if e.opts.ImplicitTLS {
		c = tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	}
	e.t.Cleanup(func() { c.Close() })
	tc := &tconn{t: e.t, c: c, br: bufio.NewReader(c)}
	if g := tc.line(); !strings.HasPrefix(g, "* OK ") {
		e.t.Fatalf("greeting %q", g)
	}
	return tc
}

// login dials and logs in as alice.
func (e *env) login() *tconn {
	tc := e.dial()
	tc.cmd("LOGIN alice@example.org " + testPass).ok()
	return tc
}

// line reads one response line with its literals inlined ("{3}\r\nabc" stays in the text).
func (tc *tconn) line() string {
	tc.t.Helper()
	tc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	for {
		l, err := tc.br.ReadString('\n')
		if err != nil {
			tc.t.Fatalf("read: %v (so far %q)", err, b.String())
		}
		b.WriteString(l)
		m := literalRE.FindStringSubmatch(l)
		if m == nil {
			return strings.TrimRight(b.String(), "\r\n")
		}
		n, _ := strconv.Atoi(m[1])
		buf := make([]byte, n)
		if _, err := io.ReadFull(tc.br, buf); err != nil {
			tc.t.Fatal(err)
		}
		b.Write(buf)
	}
}

var literalRE = regexp.MustCompile(`~?\{(\d+)\}\r\n$`)

func (tc *tconn) send(s string) {
	tc.t.Helper()
	if _, err := fmt.Fprintf(tc.c, "%s\r\n", s); err != nil {
		tc.t.Fatal(err)
	}
}

// resp is the answer to one command: untagged lines and the tagged line.
type resp struct {
	t        testing.TB
	cmd      string
	untagged []string
	tagged   string
}

// cmd sends a command with a fresh tag ("t1", ...) unless it starts with a tag already ("a1 ...": a word with a
// digit), and reads to the tagged response.
func (tc *tconn) cmd(s string) *resp {
	tc.t.Helper()
	tag := ""
	if first, _, _ := strings.Cut(s, " "); strings.ContainsAny(first, "0123456789") {
		tag = first
	} else {
		tc.next++
		tag = fmt.Sprintf("t%d", tc.next)
		s = tag + " " + s
	}
	tc.send(s)
	return tc.read(tag, s)
}

// read collects responses up to the tagged one.
func (tc *tconn) read(tag, cmd string) *resp {
	tc.t.Helper()
	r := &resp{t: tc.t, cmd: cmd}
	for {
		l := tc.line()
		if strings.HasPrefix(l, tag+" ") {
			r.tagged = l
			return r
		}
		r.untagged = append(r.untagged, l)
	}
}

func (r *resp) status(want string) *resp {
	r.t.Helper()
	_, rest, _ := strings.Cut(r.tagged, " ")
	if !strings.HasPrefix(rest, want+" ") {
		r.t.Fatalf("%s\n got: %s\n untagged: %q", r.cmd, r.tagged, r.untagged)
	}
	return r
}

func (r *resp) ok() *resp  { r.t.Helper(); return r.status("OK") }
func (r *resp) no() *resp  { r.t.Helper(); return r.status("NO") }
func (r *resp) bad() *resp { r.t.Helper(); return r.status("BAD") }

// has requires an untagged line matching the regexp (anchored at the start after "* ").
func (r *resp) has(re string) *resp {
	r.t.Helper()
	rx := regexp.MustCompile(`^\* ` + re)
	for _, l := range r.untagged {
		if rx.MatchString(l) {
			return r
		}
	}
	r.t.Fatalf("%s\n no untagged %q in %q (tagged %s)", r.cmd, re, r.untagged, r.tagged)
	return r
}

// lacks requires that no untagged line matches.
func (r *resp) lacks(re string) *resp {
	r.t.Helper()
	rx := regexp.MustCompile(`^\* ` + re)
	for _, l := range r.untagged {
		if rx.MatchString(l) {
			r.t.Fatalf("%s\n unexpected %q in %q", r.cmd, l, r.untagged)
		}
	}
	return r
}

// code requires the tagged line to match re.
func (r *resp) code(re string) *resp {
	r.t.Helper()
	if !regexp.MustCompile(re).MatchString(r.tagged) {
		r.t.Fatalf("%s\n tagged %q does not match %q", r.cmd, r.tagged, re)
	}
	return r
}

// count returns how many untagged lines match re.
func (r *resp) count(re string) int {
	rx := regexp.MustCompile(`^\* ` + re)
	n := 0
	for _, l := range r.untagged {
		if rx.MatchString(l) {
			n++
		}
	}
	return n
}

func msgN(i int) string {
	return fmt.Sprintf("From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: message %d\r\n"+
		"Date: Fri, 01 Mar 2024 10:%02d:00 +0000\r\nMessage-ID: <%d@example.org>\r\n\r\nBody number %d\r\n", i, i%60, i, i)
}

func plainIR(u, p string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + u + "\x00" + p))
}

func timeSoon() time.Time { return time.Now().Add(5 * time.Second) }

// starttls upgrades the transcript connection.
func (tc *tconn) starttls() {
	tc.t.Helper()
	tc.cmd("STARTTLS").ok()
	c := tls.Client(tc.c, &tls.Config{InsecureSkipVerify: true})
	if err := c.Handshake(); err != nil {
		tc.t.Fatal(err)
	}
	tc.c, tc.br = c, bufio.NewReader(c)
}

// wrapConn sends writes through w (a compressor) and everything else to the connection.
type wrapConn struct {
	net.Conn
	w io.Writer
}

func (c wrapConn) Write(b []byte) (int, error) { return c.w.Write(b) }

// testAuth checks passwords against testPass: the protocol tests need no password hashing (internal/auth has its
// own tests; the integration tests run the real service).
type testAuth struct{ users *sqlite.Store }

func (a *testAuth) Authenticate(ctx context.Context, _ netip.Addr, username, password string) (store.User, error) {
	u, err := a.users.GetUser(ctx, strings.ToLower(username))
	if err != nil || password != testPass {
		return store.User{}, auth.ErrInvalidCredentials
	}
	return u, nil
}

func (a *testAuth) SASLConn(ctx context.Context, r auth.SASLRequest) (sasl.Server, error) {
	if !strings.EqualFold(r.Mech, "PLAIN") {
		return nil, fmt.Errorf("unsupported mechanism %q", r.Mech)
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		u, err := a.Authenticate(ctx, r.IP, username, password)
		if err == nil {
			r.OnSuccess(u)
		}
		return err
	}), nil
}

func (a *testAuth) MechanismsFor(*tls.ConnectionState) []string { return []string{"PLAIN"} }
