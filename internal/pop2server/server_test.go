package pop2server

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
	"fmt"
	"io"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/auth"
	"github.com/postern/postern/internal/store/storefake"
)

const (
	alice = int64(1)
	bob   = int64(2)
	msg1  = "From: a@example.net\r\nSubject: one\r\n\r\nHello\r\n.dotted\r\n"
	msg2  = "Subject: two\n\nbare LF body\n"
)

func selfSigned(t testing.TB) *tls.Config {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pop.example.org"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

type fixture struct {
	srv   *Server
	store *storefake.Store
	ln    net.Listener // plain TCP
	tlsLn net.Listener // TLS-protected
}

func newFixture(t testing.TB, mod func(*Options)) *fixture {
	t.Helper()
	hash, _ := auth.HashPassword("secret")
	as, err := auth.New(auth.Options{Users: users{
		"alice@example.org": {ID: alice, Address: "alice@example.org", PasswordHash: hash},
		"bob@example.org":   {ID: bob, Address: "bob@example.org", PasswordHash: hash},
	}, FailureDelay: -1, Lockout: auth.NewLockout(auth.LockoutOptions{Failures: 2})})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: storefake.New()}
	f.store.AddMailbox(alice)
	f.store.AddMailbox(bob)
	o := Options{Hostname: "pop.example.org", AllowPlaintextAuth: true, Store: f.store, Blobs: f.store, Auth: as}
	if mod != nil {
		mod(&o)
	}
	if f.srv, err = New(o); err != nil {
		t.Fatal(err)
	}
	f.ln, _ = net.Listen("tcp", "127.0.0.1:0")
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	f.tlsLn = tls.NewListener(ln2, selfSigned(t))
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

// client is a transcript-style POP2 client: c.cmd("READ 1").expect("=").
type client struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func (f *fixture) connect(t testing.TB, useTLS bool) *client {
	t.Helper()
	var c net.Conn
	var err error
	if useTLS {
		c, err = tls.Dial("tcp", f.tlsLn.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = net.Dial("tcp", f.ln.Addr().String())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// dial connects and reads the "+" greeting.
func (f *fixture) dial(t testing.TB) *client {
	t.Helper()
	c := f.connect(t, false)
	if g := c.line(); !strings.HasPrefix(g, "+ POP2 ") {
		t.Fatalf("greeting %q", g)
	}
	return c
}

func (c *client) cmd(line string) *client {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.c, line+"\r\n"); err != nil {
		c.t.Fatalf("write %q: %v", line, err)
	}
	return c
}

func (c *client) line() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := c.br.ReadString('\n')
	if err != nil || !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("read: %q, %v", l, err)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// expect reads a line and checks that it starts with want.
func (c *client) expect(want string) string {
	c.t.Helper()
	l := c.line()
	if !strings.HasPrefix(l, want) {
		c.t.Fatalf("got %q, want a line starting with %q", l, want)
	}
	return l
}

// read reads exactly n octets (the message after RETR).
func (c *client) read(n int) string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c.br, b); err != nil {
		c.t.Fatalf("read %d octets: %v", n, err)
	}
	return string(b)
}

func (c *client) closed() bool {
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.br.ReadByte()
	return err != nil
}

// TestTranscript is RFC 937's session: HELO, READ, RETR, ACKS/ACKD/NACK, FOLD, QUIT.
func TestTranscript(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	u1 := f.store.Deliver(alice, msg1)
	u2 := f.store.Deliver(alice, msg2)
	u3 := f.store.Deliver(alice, msg1, `\Seen`)
	c := f.dial(t)
	c.cmd("HELO alice@example.org secret").expect("#3 messages in INBOX")
	c.cmd("READ").expect(fmt.Sprintf("=%d characters in message 1", len(msg1)))
	c.cmd("RETR")
	if got := c.read(len(msg1)); got != msg1 {
		t.Errorf("message 1 = %q", got)
	}
	c.cmd("NACK").expect(fmt.Sprintf("=%d characters in message 1", len(msg1)))
	c.cmd("RETR")
	c.read(len(msg1))
	c.cmd("ACKD").expect(fmt.Sprintf("=%d characters in message 2", len(msg2)))
	c.cmd("RETR")
	if got := c.read(len(msg2)); got != msg2 {
		t.Errorf("message 2 = %q: the stored octets, unchanged", got)
	}
	c.cmd("ACKS").expect(fmt.Sprintf("=%d characters in message 3", len(msg1)))
	c.cmd("READ 1").expect("=0 Message 1 deleted")
	c.cmd("RETR").expect("- Command out of sequence")
	c.cmd("READ 9").expect("=0 No more messages")
	c.cmd("READ x").expect("- Invalid message number")
	c.cmd("FOLD Sent").expect("- Only INBOX")
	c.cmd("fold inbox").expect("#3 messages in INBOX")
	c.cmd("READ 3").expect("=")
	c.cmd("RETR")
	c.read(len(msg1))
	c.cmd("ACKS").expect("=0 No more messages")
	c.cmd("QUIT").expect("+ ")
	if !c.closed() {
		t.Error("connection open after QUIT")
	}
	if got := f.store.UIDs(alice); !slices.Equal(got, []uint32{u2, u3}) {
		t.Errorf("INBOX = %v, want %v", got, []uint32{u2, u3})
	}
	if !slices.Contains(f.store.Flags(alice, u2), `\Seen`) {
		t.Error("ACKS did not mark message 2 \\Seen")
	}
	if len(f.store.Expunges()) != 1 || f.store.Expunges()[0].RequireDeleted || !f.store.Expunges()[0].UIDs.Contains(u1) {
		t.Errorf("expunges = %+v", f.store.Expunges())
	}
	if len(f.store.FlagRequests()) != 1 || f.store.FlagRequests()[0].UIDs.Contains(u3) {
		t.Errorf("flag requests = %+v: only message 2 needed \\Seen", f.store.FlagRequests())
	}
}

// TestPlaintextRefused: without TLS and without allow_plaintext, the greeting refuses the session, so the client
// never sends its password; over TLS the same server works.
func TestPlaintextRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.AllowPlaintextAuth = false })
	c := f.connect(t, false)
	c.expect("- POP2 unavailable")
	if !c.closed() {
		t.Error("connection open after the refusal")
	}
	c = f.connect(t, true)
	c.expect("+ POP2 pop.example.org")
	c.cmd("HELO alice@example.org secret").expect("#0")
	c.cmd("QUIT").expect("+")
}

func TestBadLoginCloses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	c := f.dial(t)
	c.cmd("HELO alice@example.org wrong").expect("- Bad login")
	if !c.closed() {
		t.Error("connection open after a bad login")
	}
	f.dial(t).cmd("HELO alice@example.org").expect("- Missing user or password")
	f.dial(t).cmd("HELO nobody@example.org secret").expect("- Bad login")
	// The lockout (2 failures here) is the one SMTP, IMAP and POP3 share.
	f.dial(t).cmd("HELO alice@example.org secret").expect("- Too many failed logins")
}

func TestPasswordWithSpaces(t *testing.T) {
	t.Parallel()
	hash, _ := auth.HashPassword("correct horse battery")
	as, _ := auth.New(auth.Options{Users: users{"carol@example.org": {ID: 3, Address: "carol@example.org", PasswordHash: hash}},
		FailureDelay: -1})
	f := newFixture(t, func(o *Options) { o.Auth = as })
	f.store.AddMailbox(3)
	f.dial(t).cmd("HELO carol@example.org correct horse battery").expect("#0")
}

func TestInUseAndDrop(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.store.Deliver(alice, msg1)
	first := f.dial(t)
	first.cmd("HELO alice@example.org secret").expect("#1")
	f.dial(t).cmd("HELO alice@example.org secret").expect("- Maildrop already locked")
	first.cmd("READ 1").expect("=")
	first.cmd("RETR")
	first.read(len(msg1))
	first.cmd("ACKD").expect("=0")
	first.c.Close() // dropped before QUIT: nothing is deleted
	for i := 0; ; i++ {
		c := f.dial(t)
		l := c.cmd("HELO alice@example.org secret").line()
		if l == "#1 messages in INBOX" {
			break
		}
		if !strings.Contains(l, "locked") || i > 100 {
			t.Fatalf("login after drop: %q", l)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(f.store.Expunges()) != 0 {
		t.Error("a dropped connection deleted messages")
	}
}

func TestSnapshotAndUpdateFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.store.Deliver(alice, msg1)
	c := f.dial(t)
	c.cmd("HELO alice@example.org secret").expect("#1")
	f.store.Deliver(alice, msg2)
	c.cmd("READ 2").expect("=0")
	c.cmd("READ 1").expect("=")
	c.cmd("RETR")
	c.read(len(msg1))
	c.cmd("ACKD").expect("=0")
	f.store.Fail(nil, errors.New("disk full"))
	c.cmd("QUIT").expect("- Some deleted messages not removed")
	if got := f.store.UIDs(alice); len(got) != 2 {
		t.Errorf("INBOX = %v", got)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.MaxErrors = 5 })
	c := f.dial(t)
	c.cmd("READ").expect("- Command out of sequence")
	c.cmd("STAT").expect("- Unknown command")
	c.cmd("HELO " + strings.Repeat("x", 2000)).expect("- Command line too long")
	c.cmd("HELO a\x00 b").expect("- Syntax error")
	c.cmd("ACKS").expect("- Command out of sequence")
	c.expect("- Too many errors")
	if !c.closed() {
		t.Error("connection open after the error budget")
	}
	f.store.Deliver(alice, msg1)
	c = f.dial(t)
	c.cmd("HELO alice@example.org secret").expect("#1")
	c.cmd("RETR").expect("- Command out of sequence")
	c.cmd("READ 1").expect("=")
	c.cmd("RETR now").expect("- RETR takes no argument")
	c.cmd("QUIT").expect("+")
}

func TestAutologoutAndShutdown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.Timeout = 300 * time.Millisecond })
	c := f.dial(t)
	c.expect("- Autologout")
	g := newFixture(t, nil)
	c = g.dial(t)
	c.cmd("HELO alice@example.org secret").expect("#0")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c.expect("- Server shutting down")
	if err := g.srv.Serve(g.ln); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v", err)
	}
}

func TestMaxConnsPerIP(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.MaxConnsPerIP = 1 })
	f.dial(t)
	f.connect(t, false).expect("- Too many connections")
}

func TestParseCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		want command
		err  error
	}{
		{"HELO u p", command{verb: "HELO", user: "u", password: "p"}, nil},
		{"helo u p q ", command{verb: "HELO", user: "u", password: "p q "}, nil},
		{"READ 12", command{verb: "READ", arg: "12"}, nil},
		{"FOLD  INBOX ", command{verb: "FOLD", arg: "INBOX"}, nil},
		{"ACKS", command{verb: "ACKS"}, nil},
		{"", command{}, errEmpty},
		{"READX", command{}, errBadKeyword},
		{"RE1D", command{}, errBadKeyword},
		{"HELO a\tb", command{}, errBadChar},
	} {
		got, err := parseCommand(tc.line)
		if got != tc.want || err != tc.err {
			t.Errorf("parseCommand(%q) = %+v, %v; want %+v, %v", tc.line, got, err, tc.want, tc.err)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"HELO user pass word", "READ", "READ 1", "FOLD inbox", "ACKD", "NACK x", "", "RETR\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, err := parseCommand(line)
		if err != nil {
			return
		}
		if len(cmd.verb) != 4 || strings.ToUpper(cmd.verb) != cmd.verb {
			t.Errorf("verb %q", cmd.verb)
		}
		if strings.ContainsAny(cmd.arg+cmd.user+cmd.password, "\x00\r\n") {
			t.Errorf("control characters passed: %+v", cmd)
		}
		if cmd.verb == "HELO" && strings.Contains(cmd.user, " ") {
			t.Errorf("user %q contains a space", cmd.user)
		}
	})
}

// FuzzSession drives whole sessions with arbitrary input: no panic, no hang, no lock left behind.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"HELO alice@example.org secret\r\nREAD\r\nRETR\r\nACKD\r\nRETR\r\nNACK\r\nRETR\r\nACKS\r\nQUIT\r\n",
		"HELO alice@example.org secret\r\nFOLD INBOX\r\nREAD 2\r\nRETR\r\nACKS\r\nREAD 1\r\nQUIT\r\n",
		"READ\r\nHELO\r\nHELO a b\r\n",
		"HELO alice@example.org secret\r\nREAD 99999999999\r\nRETR x\r\nACKD\r\nFOLD x\r\n",
	} {
		f.Add([]byte(s))
	}
	fx := newFixture(f, func(o *Options) { o.Timeout = 2 * time.Second; o.MaxConnsPerIP = 1000 })
	fx.store.Deliver(alice, msg1)
	fx.store.Deliver(alice, msg2)
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
	mb, _ := fx.store.GetMailbox(ctx, alice, "INBOX")
	if _, ok := fx.srv.opts.Locks.TryLock(mb.ID); !ok {
		f.Fatal("a session kept the maildrop lock")
	}
}
