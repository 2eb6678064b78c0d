package auth

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/xdg-go/scram"

	"github.com/postern/postern/internal/pki"
	"github.com/postern/postern/internal/store"
)

// tlsPair performs a real TLS handshake over a pipe and returns the server's and the client's connection state.
func tlsPair(t *testing.T, srvCfg *tls.Config, cliCfg *tls.Config) (server, client *tls.ConnectionState) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	s, c := tls.Server(a, srvCfg), tls.Client(b, cliCfg)
	errc := make(chan error, 1)
	go func() { errc <- s.Handshake() }()
	if err := c.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	ss, cs := s.ConnectionState(), c.ConnectionState()
	return &ss, &cs
}

// testPKI is a CA with a server certificate for mail.example.org and client configs trusting it.
type testPKI struct {
	ca     *pki.CA
	server tls.Certificate
	roots  *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	ca, err := pki.InitCA(t.TempDir(), pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue([]string{"mail.example.org"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	return &testPKI{ca: ca, server: c, roots: roots}
}

func (p *testPKI) handshake(t *testing.T, version uint16, clientCert *tls.Certificate) (server, client *tls.ConnectionState) {
	t.Helper()
	srv := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: version, MaxVersion: version,
		ClientAuth: tls.RequestClientCert}
	cli := &tls.Config{RootCAs: p.roots, ServerName: "mail.example.org", MinVersion: version, MaxVersion: version}
	if clientCert != nil {
		cli.Certificates = []tls.Certificate{*clientCert}
	}
	return tlsPair(t, srv, cli)
}

func scramService(t *testing.T, users *fakeUsers, p *testPKI) *Service {
	t.Helper()
	o := Options{Users: users, FailureDelay: -1, SCRAM: true, CRAMMD5: true, Hostname: "mail.example.org",
		UpgradeCredentials: true, Hash: HashOptions{SCRAMIterations: 4096, CRAMMD5: true}}
	if p != nil {
		o.ClientCAs = p.roots
		o.ServerCertificate = func(*tls.ConnectionState) *x509.Certificate { return p.server.Leaf }
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// addUser stores a user with a full credential set (SCRAM with 4096 iterations, CRAM-MD5).
func (f *fakeUsers) addUser(t *testing.T, id int64, address, password string, o HashOptions) {
	t.Helper()
	h, err := HashPasswordOptions(password, o)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[address] = store.User{ID: id, Address: address, PasswordHash: h}
}

var fullHash = HashOptions{SCRAMIterations: 4096, CRAMMD5: true}

// scramExchange runs xdg-go's client conversation against srv; it reports whether the client accepted the
// server's signature.
func scramExchange(conv *scram.ClientConversation, srv sasl.Server) error {
	resp, err := conv.Step("")
	if err != nil {
		return err
	}
	for i := 0; i < 4; i++ {
		ch, done, err := srv.Next([]byte(resp))
		if err != nil {
			return err
		}
		if done {
			if !conv.Valid() {
				return errors.New("server done before the client verified it")
			}
			return nil
		}
		if conv.Done() { // server-final verified; SMTP, IMAP and POP3 answer it with an empty response
			resp = ""
			continue
		}
		if resp, err = conv.Step(string(ch)); err != nil {
			return err
		}
	}
	return errors.New("exchange does not end")
}

func TestMechanismsFor(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	users := newUsers(t)
	plain, _ := New(Options{Users: users})
	full := scramService(t, users, p)
	cliCert := issueClient(t, p.ca, "tim@example.org")
	srv13, _ := p.handshake(t, tls.VersionTLS13, nil)
	srv12, _ := p.handshake(t, tls.VersionTLS12, nil)
	srvCert, _ := p.handshake(t, tls.VersionTLS13, &cliCert)
	noEndPoint := scramService(t, users, nil)
	for _, tt := range []struct {
		name string
		s    *Service
		cs   *tls.ConnectionState
		want string
	}{
		{"zero options", plain, srv13, "PLAIN LOGIN"},
		{"no TLS", full, nil, "SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN"},
		{"TLS 1.3", full, srv13, "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN"},
		{"TLS 1.2 (server end point)", full, srv12, "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN"},
		{"TLS 1.2 without end point", noEndPoint, srv12, "SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN"},
		{"TLS 1.3 exporter only", noEndPoint, srv13, "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN"},
		{"client certificate", full, srvCert, "SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN EXTERNAL"},
	} {
		if got := strings.Join(tt.s.MechanismsFor(tt.cs), " "); got != tt.want {
			t.Errorf("%s: %s; want %s", tt.name, got, tt.want)
		}
	}
	if got := plain.MechanismsFor(nil); !slices.Equal(got, []string{"PLAIN", "LOGIN"}) {
		t.Errorf("MechanismsFor(nil) = %v", got)
	}
	// A mechanism not offered on the connection is refused.
	for _, m := range []string{"EXTERNAL", "SCRAM-SHA-256-PLUS", "DIGEST-MD5", "GSSAPI"} {
		if _, err := full.SASLConn(context.Background(), SASLRequest{IP: testIP, Mech: m}); err == nil {
			t.Errorf("%s accepted without TLS", m)
		}
	}
	if _, err := plain.SASLConn(context.Background(), SASLRequest{IP: testIP, Mech: "CRAM-MD5"}); err == nil {
		t.Error("CRAM-MD5 accepted while not enabled")
	}
}

func TestSCRAMService(t *testing.T) {
	t.Parallel()
	users := newUsers(t)
	users.addUser(t, 3, "ann@example.org", "pencil", fullHash)
	users.addUser(t, 5, "old@example.org", timPassword, HashOptions{}) // as written before SCRAM existed
	s := scramService(t, users, nil)
	ctx := context.Background()
	for _, tt := range []struct {
		mech       string
		hash       scram.HashGeneratorFcn
		user, pass string
		ok         bool
	}{
		{"SCRAM-SHA-256", scram.SHA256, "ann@example.org", "pencil", true},
		{"scram-sha-1", scram.SHA1, "Ann@Example.ORG", "pencil", true},
		{"SCRAM-SHA-256", scram.SHA256, "ann@example.org", "pencilx", false},
		{"SCRAM-SHA-256", scram.SHA256, "nobody@example.org", "pencil", false},
		{"SCRAM-SHA-256", scram.SHA1, "ann@example.org", "pencil", false},         // SHA-1 proof under SHA-256
		{"SCRAM-SHA-256", scram.SHA256, "old@example.org", timPassword, false},    // argon2id only: no SCRAM secret yet
		{"SCRAM-SHA-256", scram.SHA256, "broken@example.org", timPassword, false}, // unusable stored value
	} {
		var got store.User
		srv, err := s.SASLConn(ctx, SASLRequest{IP: testIP, Mech: tt.mech, OnSuccess: func(u store.User) { got = u }})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := tt.hash.NewClient(tt.user, tt.pass, "")
		err = scramExchange(c.NewConversation(), srv)
		if tt.ok && (err != nil || got.ID != 3) {
			t.Errorf("%s %s: %v, user %+v", tt.mech, tt.user, err, got)
		}
		if !tt.ok && (!errors.Is(err, ErrInvalidCredentials) || got.ID != 0) {
			t.Errorf("%s %s/%s: err %v user %+v; want ErrInvalidCredentials", tt.mech, tt.user, tt.pass, err, got)
		}
	}
	// old has an argon2id hash only; a password login adds the SCRAM secrets, then SCRAM works.
	if _, err := s.Authenticate(ctx, testIP, "old@example.org", timPassword); err != nil {
		t.Fatal(err)
	}
	srv, _ := s.SASLConn(ctx, SASLRequest{IP: testIP, Mech: "SCRAM-SHA-256"})
	c, _ := scram.SHA256.NewClient("old@example.org", timPassword, "")
	if err := scramExchange(c.NewConversation(), srv); err != nil {
		t.Errorf("SCRAM after the upgrade: %v", err)
	}
}

func TestSCRAMPlus(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	users := newUsers(t)
	users.addUser(t, 3, "ann@example.org", "pencil", fullHash)
	s := scramService(t, users, p)
	ctx := context.Background()
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		srvCS, cliCS := p.handshake(t, version, nil)
		_, otherCS := p.handshake(t, version, nil)
		exporter := func(cs *tls.ConnectionState) (scram.ChannelBinding, error) {
			d, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", []byte{}, 32)
			return scram.ChannelBinding{Type: scram.ChannelBindingTLSExporter, Data: d}, err
		}
		for _, tt := range []struct {
			name string
			cb   func(*tls.ConnectionState) (scram.ChannelBinding, error)
			cs   *tls.ConnectionState
			ok   bool
		}{
			{"tls-server-end-point", scram.NewTLSServerEndpointBinding, cliCS, true},
			{"tls-exporter", exporter, cliCS, version == tls.VersionTLS13},
			{"tls-exporter of another connection", exporter, otherCS, false},
		} {
			cb, err := tt.cb(tt.cs)
			if err != nil {
				t.Fatal(err)
			}
			var got store.User
			srv, err := s.SASLConn(ctx, SASLRequest{IP: testIP, Mech: "SCRAM-SHA-256-PLUS", TLS: srvCS,
				OnSuccess: func(u store.User) { got = u }})
			if err != nil {
				t.Fatal(err)
			}
			c, _ := scram.SHA256.NewClient("ann@example.org", "pencil", "")
			err = scramExchange(c.NewConversationWithChannelBinding(cb), srv)
			if tt.ok != (err == nil) || tt.ok != (got.ID == 3) {
				t.Errorf("TLS %x %s: err %v user %+v; want ok=%v", version, tt.name, err, got, tt.ok)
			}
		}
		// A client that supports binding but saw no -PLUS (flag y) is being downgraded.
		srv, _ := s.SASLConn(ctx, SASLRequest{IP: testIP, Mech: "SCRAM-SHA-256", TLS: srvCS})
		c, _ := scram.SHA256.NewClient("ann@example.org", "pencil", "")
		if err := scramExchange(c.NewConversationAdvertisingChannelBinding(), srv); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("TLS %x: downgraded client: %v", version, err)
		}
	}
}

// cramClient answers a CRAM-MD5 challenge (RFC 2195 2).
type cramClient struct{ user, pass string }

func (c cramClient) Start() (string, []byte, error) { return "CRAM-MD5", nil, nil }
func (c cramClient) Next(ch []byte) ([]byte, error) {
	m := hmac.New(md5.New, []byte(c.pass))
	m.Write(ch)
	return []byte(c.user + " " + hex.EncodeToString(m.Sum(nil))), nil
}

func TestCRAMService(t *testing.T) {
	t.Parallel()
	users := newUsers(t)
	users.addUser(t, 3, "ann@example.org", "pencil", fullHash)
	users.addUser(t, 4, "bob@example.org", "pencil", DefaultHashOptions) // no CRAM-MD5 secret
	s := scramService(t, users, nil)
	ctx := context.Background()
	for _, tt := range []struct {
		c  cramClient
		ok bool
	}{
		{cramClient{"ann@example.org", "pencil"}, true},
		{cramClient{"ANN@example.org", "pencil"}, true},
		{cramClient{"ann@example.org", "pencil "}, false},
		{cramClient{"bob@example.org", "pencil"}, false},
		{cramClient{"nobody@example.org", "pencil"}, false},
		{cramClient{strings.Repeat("a", 2000), "pencil"}, false},
	} {
		var got store.User
		srv, err := s.SASLConn(ctx, SASLRequest{IP: testIP, Mech: "CRAM-MD5", OnSuccess: func(u store.User) { got = u }})
		if err != nil {
			t.Fatal(err)
		}
		ch, _, _ := srv.Next(nil)
		if !strings.HasPrefix(string(ch), "<") || !strings.HasSuffix(string(ch), "@mail.example.org>") {
			t.Errorf("challenge %q is not <...@mail.example.org>", ch)
		}
		resp, _ := tt.c.Next(ch)
		_, done, err := srv.Next(resp)
		if !done || tt.ok != (err == nil) || tt.ok != (got.ID == 3) {
			t.Errorf("%s: done %v err %v user %+v", tt.c.user, done, err, got)
		}
	}
	// A password login with CRAM-MD5 enabled stores bob's secret; afterwards CRAM-MD5 works for him.
	if _, err := s.Authenticate(ctx, testIP, "bob@example.org", "pencil"); err != nil {
		t.Fatal(err)
	}
	srv, _ := s.SASLConn(ctx, SASLRequest{IP: testIP, Mech: "CRAM-MD5"})
	if err := exchange(cramClient{"bob@example.org", "pencil"}, srv); err != nil {
		t.Errorf("CRAM-MD5 after the upgrade: %v", err)
	}
}

// TestUpgradeCredentials: the stored set follows the configured mechanisms at each password login.
func TestUpgradeCredentials(t *testing.T) {
	t.Parallel()
	users := newUsers(t)
	users.addUser(t, 3, "ann@example.org", "pencil", fullHash)
	ctx := context.Background()
	stored := func() credentials {
		u, _ := users.GetUser(ctx, "ann@example.org")
		c, err := parseCredentials(u.PasswordHash)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// The admin turns CRAM-MD5 off: the secret goes at the next login; SCRAM with more iterations replaces 4096.
	s, _ := New(Options{Users: users, FailureDelay: -1, SCRAM: true, UpgradeCredentials: true,
		Hash: HashOptions{SCRAMIterations: 5000}})
	before := stored().primary
	if _, err := s.Authenticate(ctx, testIP, "ann@example.org", "pencil"); err != nil {
		t.Fatal(err)
	}
	c := stored()
	if c.cram != nil || c.scram2 == nil || c.scram2.iters != 5000 || c.primary != before {
		t.Errorf("after login: %s", c)
	}
	// A wrong password changes nothing.
	s.Authenticate(ctx, testIP, "ann@example.org", "wrong")
	if stored().String() != c.String() {
		t.Error("a failed login rewrote the credentials")
	}
	// Without UpgradeCredentials nothing is written.
	s2, _ := New(Options{Users: users, FailureDelay: -1, Hash: fullHash})
	s2.Authenticate(ctx, testIP, "ann@example.org", "pencil")
	if stored().String() != c.String() {
		t.Error("credentials rewritten without UpgradeCredentials")
	}
}

// issueClient issues a client certificate for address from ca.
func issueClient(t *testing.T, ca *pki.CA, address string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.IssueClient(address, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestExternal(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	other := newTestPKI(t)
	users := newUsers(t)
	s := scramService(t, users, p)
	ctx := context.Background()
	tim := issueClient(t, p.ca, "tim@example.org")
	nobody := issueClient(t, p.ca, "nobody@example.org")
	foreign := issueClient(t, other.ca, "tim@example.org")
	serverCert := p.server // a serverAuth certificate is no client certificate
	for _, tt := range []struct {
		name    string
		cert    *tls.Certificate
		authzid []byte
		ok      bool
	}{
		{"no authzid", &tim, nil, true},
		{"empty authzid", &tim, []byte{}, true},
		{"own authzid", &tim, []byte("Tim@example.org"), true},
		{"other authzid", &tim, []byte("broken@example.org"), false},
		{"unknown user", &nobody, nil, false},
		{"other CA", &foreign, nil, false},
		{"server certificate", &serverCert, nil, false},
	} {
		srvCS, _ := p.handshake(t, tls.VersionTLS13, tt.cert)
		var got store.User
		srv, err := s.SASLConn(ctx, SASLRequest{IP: testIP, Mech: "external", TLS: srvCS, OnSuccess: func(u store.User) { got = u }})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var done bool
		if tt.authzid == nil {
			ch, d, cerr := srv.Next(nil)
			if len(ch) != 0 || d || cerr != nil {
				t.Fatalf("%s: empty challenge: %q %v %v", tt.name, ch, d, cerr)
			}
			_, done, err = srv.Next([]byte{})
		} else {
			_, done, err = srv.Next(tt.authzid)
		}
		if !done || tt.ok != (err == nil) || tt.ok != (got.ID == 1) {
			t.Errorf("%s: done %v err %v user %+v", tt.name, done, err, got)
		}
	}
	// Without a client certificate EXTERNAL is not even offered.
	srvCS, _ := p.handshake(t, tls.VersionTLS13, nil)
	if _, err := s.SASLConn(ctx, SASLRequest{IP: testIP, Mech: "EXTERNAL", TLS: srvCS}); err == nil {
		t.Error("EXTERNAL accepted without a client certificate")
	}
}
