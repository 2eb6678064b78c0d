package smtpserver

import (
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
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/auth"
	"github.com/postern/postern/internal/directory"
	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/store"
)

// fakeDir: example.org is local with users alice and bob; access rules from a map.
type fakeDir struct {
	mu     sync.Mutex
	access map[string]string
}

func (f *fakeDir) CheckRecipient(_ context.Context, a mail.Address) (bool, error) {
	if a.Domain != "example.org" {
		return false, nil
	}
	if a.Key() == "alice@example.org" || a.Key() == "bob@example.org" {
		return true, nil
	}
	return true, directory.ErrUnknownRecipient
}

func (f *fakeDir) Access(_ context.Context, ip netip.Addr, keys ...string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ip.IsValid() {
		if a, ok := f.access[ip.String()]; ok {
			return a, nil
		}
	}
	for _, k := range keys {
		if a, ok := f.access[k]; ok {
			return a, nil
		}
	}
	return "", nil
}

func (f *fakeDir) MaySendAs(_ context.Context, u store.User, from mail.Address) (bool, error) {
	return from.Key() == u.Address, nil
}

type users map[string]store.User

func (u users) GetUser(_ context.Context, a string) (store.User, error) {
	if x, ok := u[a]; ok {
		return x, nil
	}
	return store.User{}, store.ErrNotFound
}

// fakeDeliverer records what it was given.
type fakeDeliverer struct {
	mu   sync.Mutex
	envs []mail.Envelope
	msgs []string
}

func (f *fakeDeliverer) Deliver(_ context.Context, env *mail.Envelope, body io.Reader, _ *filter.Session) error {
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.envs = append(f.envs, *env)
	f.msgs = append(f.msgs, string(b))
	return nil
}

func (f *fakeDeliverer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.msgs)
}

func selfSigned(t testing.TB) *tls.Config {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.example.org"},
		DNSNames: []string{"mx.example.org"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

type fixture struct {
	srv *Server
	dir *fakeDir
	del *fakeDeliverer
	ln  net.Listener
}

func newFixture(t testing.TB, mode Mode, mod func(*Options)) *fixture {
	hash, _ := auth.HashPassword("secret")
	as, _ := auth.New(auth.Options{Users: users{"alice@example.org": {ID: 1, Address: "alice@example.org", PasswordHash: hash}},
		FailureDelay: time.Millisecond, Lockout: auth.NewLockout(auth.LockoutOptions{})})
	f := &fixture{dir: &fakeDir{access: map[string]string{}}, del: &fakeDeliverer{}}
	o := Options{Mode: mode, Hostname: "mx.example.org", TLSConfig: selfSigned(t), MaxMessageBytes: 10000, MaxRecipients: 3,
		MaxErrors: 10, Directory: f.dir, Auth: as, Deliverer: f.del}
	if mod != nil {
		mod(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	f.ln, _ = net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(f.ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return f
}

// client is a transcript-style test client.
type client struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func (f *fixture) dial(t testing.TB) *client {
	c, err := net.Dial("tcp", f.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, br: bufio.NewReader(c)}
	return cl
}

func (c *client) send(s string) { c.t.Helper(); fmt.Fprintf(c.c, "%s\r\n", s) }

func (c *client) expect(re string) string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var last string
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply (want %q): %v", re, err)
		}
		last = strings.TrimRight(l, "\r\n")
		if len(last) < 4 || last[3] != '-' {
			break
		}
	}
	if !regexp.MustCompile("^" + re).MatchString(last) {
		c.t.Fatalf("got %q, want %q", last, re)
	}
	return last
}

// expectEHLO sends EHLO and returns its whole multi-line reply.
func (c *client) expectEHLO() string {
	c.t.Helper()
	c.send("EHLO x")
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var all []string
	for {
		l, err := c.br.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, "250") {
			c.t.Fatalf("EHLO reply %q: %v", l, err)
		}
		all = append(all, strings.TrimRight(l, "\r\n"))
		if l[3] == ' ' {
			return strings.Join(all, "\n")
		}
	}
}

func (c *client) starttls() {
	c.t.Helper()
	c.send("STARTTLS")
	c.expect("220 ")
	tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.c, c.br = tc, bufio.NewReader(tc)
}

func plain(u, p string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + u + "\x00" + p))
}

func TestMXTransaction(t *testing.T) {
	f := newFixture(t, ModeMX, nil)
	c := f.dial(t)
	c.expect("220 mx.example.org")
	c.send("EHLO client.example.net")
	ehlo := c.expect("250 ")
	_ = ehlo
	// Pipelined: MAIL, RCPT (unknown, remote, ok with DSN), DATA in one write (RFC 2920).
	fmt.Fprint(c.c, "MAIL FROM:<s@remote.net> SIZE=100 RET=HDRS ENVID=abc\r\nRCPT TO:<nobody@example.org>\r\n"+
		"RCPT TO:<x@elsewhere.net>\r\nRCPT TO:<Alice@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@example.org\r\nDATA\r\n")
	c.expect("250 2.1.0")
	c.expect("550 5.1.1")
	c.expect("554 5.7.1 Relay access denied")
	c.expect("250 2.1.5")
	c.expect("354 ")
	fmt.Fprint(c.c, "Subject: hi\r\n\r\n..dot stuffed\r\nline\r\n.\r\n")
	c.expect(`250 2\.0\.0 Ok: queued as [0-9A-Z]+`)
	if f.del.count() != 1 {
		t.Fatalf("deliveries: %d", f.del.count())
	}
	env, msg := f.del.envs[0], f.del.msgs[0]
	if env.Ret != "HDRS" || env.EnvID != "abc" || len(env.Recipients) != 1 || env.Recipients[0].ORcpt != "rfc822;alice@example.org" ||
		len(env.Recipients[0].Notify) != 2 {
		t.Fatalf("envelope: %+v", env)
	}
	if !strings.HasPrefix(msg, "Received: from client.example.net ([127.0.0.1])") || !strings.Contains(msg, "with ESMTP id "+env.QueueID) ||
		!strings.HasSuffix(msg, "Subject: hi\r\n\r\n.dot stuffed\r\nline\r\n") {
		t.Fatalf("message:\n%s", msg)
	}
	// BDAT (RFC 3030).
	c.send("MAIL FROM:<s@remote.net>")
	c.expect("250 ")
	c.send("RCPT TO:<bob@example.org>")
	c.expect("250 ")
	fmt.Fprint(c.c, "BDAT 14\r\nSubject: b\r\n\r\nBDAT 6 LAST\r\nbody\r\n")
	c.expect("250 2.0.0 14 octets")
	c.expect("250 2.0.0 Ok: queued")
	if f.del.count() != 2 || !strings.HasSuffix(f.del.msgs[1], "Subject: b\r\n\r\nbody\r\n") {
		t.Fatalf("BDAT message: %q", f.del.msgs)
	}
	c.send("QUIT")
	c.expect("221 ")
}

func TestBadInputAndLimits(t *testing.T) {
	f := newFixture(t, ModeMX, func(o *Options) { o.MaxConnsPerIP = 2 })
	c := f.dial(t)
	c.expect("220 ")
	c.send("EHLO x")
	c.expect("250 ")
	c.send("MAIL FROM:<" + strings.Repeat("a", 1200) + "@x.org>")
	c.expect("500 5.5.2")
	c.send("NOOP")
	c.expect("250 ")
	c.send("DATA")
	c.expect("503 5.5.1")
	c.send("RCPT TO:<alice@example.org>")
	c.expect("503 5.5.1")
	c.send("MAIL FROM:<bad address>")
	c.expect("501 ")
	c.send("MAIL FROM:<s@remote.net> FOO=BAR")
	c.expect("555 ")
	c.send("MAIL FROM:<s@remote.net> SIZE=999999")
	c.expect("552 5.3.4")
	c.send("MAIL FROM:<s@remote.net>")
	c.expect("250 ")
	for i := 0; i < 3; i++ {
		c.send("RCPT TO:<alice@example.org>")
		c.expect("250 ")
	}
	c.send("RCPT TO:<alice@example.org>")
	c.expect("452 4.5.3")
	c.send("DATA")
	c.expect("354 ")
	fmt.Fprint(c.c, strings.Repeat("x", 200)+"\r\n")
	for i := 0; i < 60; i++ {
		fmt.Fprint(c.c, strings.Repeat("y", 198)+"\r\n")
	}
	fmt.Fprint(c.c, ".\r\n")
	c.expect("552 5.3.4")
	// A third connection from the same IP is refused (limit 2).
	c2 := f.dial(t)
	c2.expect("220 ")
	c3 := f.dial(t)
	c3.expect("421 4.7.0")
	if f.del.count() != 0 {
		t.Fatal("something was delivered")
	}
	// Bare LF: rejected and the connection closed.
	c2.send("MAIL FROM:<s@remote.net>")
	c2.expect("250 ")
	c2.send("RCPT TO:<alice@example.org>")
	c2.expect("250 ")
	c2.send("DATA")
	c2.expect("354 ")
	fmt.Fprint(c2.c, "Subject: x\r\n\r\nsmuggle\n.\nMAIL FROM:<a@b.c>\r\n.\r\n")
	c2.expect("554 5.6.0")
	if f.del.count() != 0 {
		t.Fatal("bare-LF message delivered")
	}
}

func TestSubmissionRulesAndInjection(t *testing.T) {
	f := newFixture(t, ModeSubmission, nil)
	c := f.dial(t)
	c.expect("220 ")
	c.send("EHLO x")
	if l := c.expect("250 "); strings.Contains(l, "AUTH") {
		t.Fatal("AUTH offered before TLS")
	}
	c.send("AUTH PLAIN " + plain("alice@example.org", "secret"))
	c.expect("538 5.7.11")
	c.send("MAIL FROM:<alice@example.org>")
	c.expect("530 5.7.0")
	if l := c.expectEHLO(); strings.Contains(l, "REQUIRETLS") {
		t.Fatal("REQUIRETLS offered before TLS")
	}
	// STARTTLS with a pipelined command must not run it inside TLS (CVE-2011-0411).
	fmt.Fprint(c.c, "STARTTLS\r\nMAIL FROM:<alice@example.org>\r\n")
	c.expect("451 ")
	c.starttls()
	if l := c.expectEHLO(); !strings.Contains(l, "REQUIRETLS") {
		t.Fatal("REQUIRETLS not offered over TLS")
	}
	c.send("AUTH PLAIN " + plain("alice@example.org", "wrong"))
	c.expect("535 5.7.8")
	c.send("AUTH LOGIN " + base64.StdEncoding.EncodeToString([]byte("alice@example.org")))
	c.expect("334 UGFzc3dvcmQ6")
	c.send(base64.StdEncoding.EncodeToString([]byte("secret")))
	c.expect("235 2.7.0")
	c.send("MAIL FROM:<bob@example.org>")
	c.expect("553 5.7.1")
	c.send("MAIL FROM:<alice@example.org>")
	c.expect("250 ")
	c.send("STARTTLS")
	c.expect("503 ")
	c.send("RCPT TO:<far@remote.net>")
	c.expect("250 ")
	c.send("DATA")
	c.expect("354 ")
	fmt.Fprint(c.c, "From: Bob <bob@example.org>\r\n\r\nx\r\n.\r\n")
	c.expect("553 5.7.1")
	c.send("MAIL FROM:<alice@example.org> REQUIRETLS=yes")
	c.expect("501 5.5.4")
	c.send("MAIL FROM:<alice@example.org> REQUIRETLS")
	c.expect("250 ")
	c.send("RCPT TO:<far@remote.net>")
	c.expect("250 ")
	c.send("DATA")
	c.expect("354 ")
	fmt.Fprint(c.c, "From: Alice <alice@example.org>\r\n\r\nx\r\n.\r\n")
	c.expect("250 ")
	if f.del.count() != 1 || !strings.Contains(f.del.msgs[0], "with ESMTPSA") || f.del.envs[0].AuthUser != "alice@example.org" ||
		!f.del.envs[0].RequireTLS {
		t.Fatalf("delivered: %+v", f.del.envs)
	}
}

func TestAccessAndErrorBudget(t *testing.T) {
	f := newFixture(t, ModeMX, func(o *Options) { o.MaxErrors = 3 })
	f.dir.mu.Lock()
	f.dir.access["127.0.0.1"] = store.ActionReject
	f.dir.mu.Unlock()
	c := f.dial(t)
	c.expect("554 5.7.1")
	f.dir.mu.Lock()
	delete(f.dir.access, "127.0.0.1")
	f.dir.access["spam.net"] = store.ActionReject
	f.dir.access["drop@remote.net"] = store.ActionDiscard
	f.dir.mu.Unlock()
	c = f.dial(t)
	c.expect("220 ")
	c.send("MAIL FROM:<x@spam.net>")
	c.expect("550 5.7.1")
	c.send("MAIL FROM:<drop@remote.net>")
	c.expect("250 ")
	c.send("RCPT TO:<alice@example.org>")
	c.expect("250 ")
	c.send("DATA")
	c.expect("354 ")
	fmt.Fprint(c.c, "Subject: gone\r\n\r\nx\r\n.\r\n")
	c.expect("250 ")
	if f.del.count() != 0 {
		t.Fatal("DISCARD delivered")
	}
	for i := 0; i < 2; i++ {
		c.send("BOGUS")
		c.expect("500 ")
	}
	c.send("BOGUS")
	c.expect("500 ")
	c.expect("421 4.7.0")
}

func TestShutdownLetsDataFinish(t *testing.T) {
	f := newFixture(t, ModeMX, nil)
	idle := f.dial(t)
	idle.expect("220 ")
	c := f.dial(t)
	c.expect("220 ")
	c.send("MAIL FROM:<s@remote.net>")
	c.expect("250 ")
	c.send("RCPT TO:<alice@example.org>")
	c.expect("250 ")
	c.send("DATA")
	c.expect("354 ")
	fmt.Fprint(c.c, "Subject: x\r\n\r\n")
	done := make(chan error)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- f.srv.Shutdown(ctx)
	}()
	idle.expect("421 4.3.2")
	time.Sleep(100 * time.Millisecond)
	fmt.Fprint(c.c, "body\r\n.\r\n")
	c.expect("250 ")
	c.expect("421 4.3.2")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.del.count() != 1 {
		t.Fatal("message finished during shutdown not delivered")
	}
}

// FuzzSession feeds arbitrary bytes as a whole client conversation: the server must answer or close, never panic
// or hang.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"HELO x\r\nAUTH LOGIN\r\nYWxpY2VAZXhhbXBsZS5vcmc=\r\nc2VjcmV0\r\nMAIL FROM:<alice@example.org>\r\n",
		"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<bob@example.org>\r\nBDAT 5 LAST\r\nhello",
		"AUTH PLAIN\r\n*\r\nRSET\r\nVRFY x\r\nSTARTTLS extra\r\n",
		"MAIL FROM:a@b.c SMTPUTF8 BODY=8BITMIME\r\nRCPT TO:<alice@example.org> NOTIFY=NEVER\r\nDATA\r\nx\n.\r\n",
	} {
		f.Add([]byte(s))
	}
	fx := newFixture(f, ModeMX, func(o *Options) { o.AllowPlaintextAuth = true; o.ReadTimeout = 2 * time.Second })
	f.Fuzz(func(t *testing.T, in []byte) {
		server, client := net.Pipe()
		fx.srv.conns.Handle(server)
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(3 * time.Second))
		client.Write(in)
		client.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fx.srv.Shutdown(ctx); err != nil {
		f.Fatalf("sessions did not end: %v", err)
	}
}
