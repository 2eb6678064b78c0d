package outbound

import (
	"bytes"
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
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// fakeMTA is a go-smtp server standing in for a remote MX or relay host.
type fakeMTA struct {
	addr string
	mu   sync.Mutex // guards the fields below
	got  []received
	auth []string // identities that authenticated

	rcptReply  map[string]*smtp.SMTPError // by recipient
	mailReply  *smtp.SMTPError
	dataReply  *smtp.SMTPError
	requireTLS bool // refuse MAIL before STARTTLS (to prove TLS was used)
}

type received struct {
	from  string
	mail  smtp.MailOptions
	rcpts []string
	ropts []smtp.RcptOptions
	data  string
	tls   bool
}

type fakeSession struct {
	m   *fakeMTA
	c   *smtp.Conn
	cur received
}

func (s *fakeSession) Reset()        { s.cur = received{} }
func (s *fakeSession) Logout() error { return nil }
func (s *fakeSession) AuthMechanisms() []string {
	return []string{sasl.Plain}
}
func (s *fakeSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != "relayuser" || password != "secret" {
			return smtp.ErrAuthFailed
		}
		s.m.mu.Lock()
		s.m.auth = append(s.m.auth, username)
		s.m.mu.Unlock()
		return nil
	}), nil
}
func (s *fakeSession) Mail(from string, opts *smtp.MailOptions) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.m.mailReply != nil {
		return s.m.mailReply
	}
	_, isTLS := s.c.TLSConnectionState()
	if s.m.requireTLS && !isTLS {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "TLS first"}
	}
	s.cur = received{from: from, tls: isTLS}
	if opts != nil {
		s.cur.mail = *opts
	}
	return nil
}
func (s *fakeSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if e := s.m.rcptReply[to]; e != nil {
		return e
	}
	s.cur.rcpts = append(s.cur.rcpts, to)
	if opts != nil {
		s.cur.ropts = append(s.cur.ropts, *opts)
	}
	return nil
}
func (s *fakeSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.m.dataReply != nil {
		return s.m.dataReply
	}
	s.cur.data = string(b)
	s.m.got = append(s.m.got, s.cur)
	return nil
}

// startMTA serves a fake MTA on loopback; tlsCfg nil: no STARTTLS.
func startMTA(t testing.TB, tlsCfg *tls.Config, tweak func(*smtp.Server)) *fakeMTA {
	t.Helper()
	m := &fakeMTA{rcptReply: map[string]*smtp.SMTPError{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &fakeSession{m: m, c: c}, nil }))
	srv.Domain = "mx.remote.test"
	srv.TLSConfig = tlsCfg
	srv.EnableDSN = true
	srv.MaxMessageBytes = 1 << 20
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	if tweak != nil {
		tweak(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return m
}

func (m *fakeMTA) messages() []received {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]received(nil), m.got...)
}

// selfSigned returns a server TLS config for names and a pool that trusts it.
func selfSigned(t testing.TB, names ...string) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// brokenTLS offers STARTTLS but fails every handshake.
func brokenTLS() *tls.Config {
	return &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return nil, errors.New("no certificate today")
	}}
}

func bodyOf(s string) io.ReadCloser { return io.NopCloser(bytes.NewReader([]byte(s))) }
