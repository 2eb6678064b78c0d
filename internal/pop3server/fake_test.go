package pop3server

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/auth"
	"github.com/postern/postern/internal/store"
	"github.com/postern/postern/internal/store/storefake"
)

type users map[string]store.User

func (u users) GetUser(_ context.Context, a string) (store.User, error) {
	if x, ok := u[a]; ok {
		return x, nil
	}
	return store.User{}, store.ErrNotFound
}

func selfSigned(t testing.TB) *tls.Config {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pop.example.org"},
		DNSNames: []string{"pop.example.org"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

const (
	alice = int64(1)
	bob   = int64(2)
)

type fixture struct {
	srv   *Server
	store *storefake.Store
	ln    net.Listener
	tlsLn net.Listener // implicit TLS (995)
}

// newFixture starts a server on loopback with users alice (1) and bob (2), both with password "secret", and the
// real auth service (lockout after 5 failures, no failure delay).
func newFixture(t testing.TB, mod func(*Options)) *fixture {
	t.Helper()
	hash, _ := auth.HashPassword("secret")
	as, err := auth.New(auth.Options{Users: users{
		"alice@example.org": {ID: alice, Address: "alice@example.org", PasswordHash: hash},
		"bob@example.org":   {ID: bob, Address: "bob@example.org", PasswordHash: hash},
	}, FailureDelay: -1, Lockout: auth.NewLockout(auth.LockoutOptions{Failures: 5})})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: storefake.New()}
	f.store.AddMailbox(alice)
	f.store.AddMailbox(bob)
	tlsConf := selfSigned(t)
	o := Options{Hostname: "pop.example.org", TLSConfig: tlsConf, Store: f.store, Blobs: f.store, Auth: as}
	if mod != nil {
		mod(&o)
	}
	if f.srv, err = New(o); err != nil {
		t.Fatal(err)
	}
	f.ln, _ = net.Listen("tcp", "127.0.0.1:0")
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	f.tlsLn = tls.NewListener(ln2, tlsConf)
	go f.srv.Serve(f.ln)
	go f.srv.Serve(f.tlsLn)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return f
}

// client is a transcript-style POP3 client: c.cmd("STAT").ok().
type client struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func (f *fixture) dial(t testing.TB) *client {
	t.Helper()
	c, err := net.Dial("tcp", f.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, br: bufio.NewReader(c)}
	cl.ok()
	return cl
}

func (f *fixture) dialTLS(t testing.TB) *client {
	t.Helper()
	c, err := tls.Dial("tcp", f.tlsLn.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, br: bufio.NewReader(c)}
	cl.ok()
	return cl
}

// stls upgrades the connection.
func (c *client) stls() *client {
	c.t.Helper()
	c.cmd("STLS").ok()
	tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.c, c.br = tc, bufio.NewReader(tc)
	return c
}

// login runs USER/PASS and expects +OK.
func (c *client) login(user string) *client {
	c.t.Helper()
	c.cmd("USER " + user).ok()
	c.cmd("PASS secret").ok()
	return c
}

func (c *client) cmd(line string) *client {
	c.t.Helper()
	c.write(line + "\r\n")
	return c
}

func (c *client) write(raw string) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.c, raw); err != nil {
		c.t.Fatalf("write %q: %v", raw, err)
	}
}

func (c *client) line() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// ok reads a +OK line and returns its text.
func (c *client) ok() string {
	c.t.Helper()
	l := c.line()
	if l != "+OK" && !strings.HasPrefix(l, "+OK ") {
		c.t.Fatalf("got %q, want +OK", l)
	}
	return strings.TrimPrefix(strings.TrimPrefix(l, "+OK"), " ")
}

// err reads a -ERR line and checks that it contains want.
func (c *client) err(want string) string {
	c.t.Helper()
	l := c.line()
	if !strings.HasPrefix(l, "-ERR ") || !strings.Contains(l, want) {
		c.t.Fatalf("got %q, want -ERR with %q", l, want)
	}
	return l
}

// multi reads +OK and a multi-line body, un-stuffed, as lines.
func (c *client) multi() []string {
	c.t.Helper()
	c.ok()
	var lines []string
	for {
		l := c.line()
		if l == "." {
			return lines
		}
		lines = append(lines, strings.TrimPrefix(l, "."))
	}
}

// body reads +OK and a multi-line body, returning the un-stuffed octets (lines joined with CRLF).
func (c *client) body() string {
	c.t.Helper()
	lines := c.multi()
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}

// closed reports whether the server closed the connection.
func (c *client) closed() bool {
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.br.ReadByte()
	return errors.Is(err, io.EOF) || err != nil
}
