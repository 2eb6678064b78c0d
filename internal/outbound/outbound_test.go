package outbound

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/dns"
)

// lab maps fake IPs to fake MTAs: a dial to 192.0.2.N:25 goes to mtas[N]; other IPs refuse.
type lab struct {
	mtas map[string]*fakeMTA // by IP
	dns  *dns.Fake

	mu    sync.Mutex // guards conns
	conns []net.Conn // every connection dialled
}

func (l *lab) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, _ := net.SplitHostPort(addr)
	m := l.mtas[host]
	if m == nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: io.ErrClosedPipe}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, m.addr)
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, conn)
		l.mu.Unlock()
	}
	return conn, err
}

// dials returns how many connections were opened.
func (l *lab) dials() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// cut closes every connection dialled so far, as a server that drops idle clients would.
func (l *lab) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
}

func newLab() *lab {
	return &lab{mtas: map[string]*fakeMTA{}, dns: &dns.Fake{MX: map[string][]dns.MX{}, IP: map[string][]netip.Addr{}}}
}

func (l *lab) host(name, ip string, m *fakeMTA) {
	l.dns.IP[name] = append(l.dns.IP[name], netip.MustParseAddr(ip))
	if m != nil {
		l.mtas[ip] = m
	}
}

type fakeSigner struct{}

func (fakeSigner) Sign(_ context.Context, r io.Reader) (string, error) {
	io.Copy(io.Discard, r)
	return "DKIM-Signature: v=1; fake\r\n", nil
}

func (l *lab) client(t *testing.T, mod func(*Options)) *Client {
	t.Helper()
	o := Options{Hostname: "mail.local.test", Resolver: l.dns, Dial: l.dial, Signer: fakeSigner{}}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const testMsg = "From: a@local.test\r\nTo: b@remote.test\r\nSubject: hi\r\n\r\nHello.\r\n.dot line\r\n"

func message(rcpts ...string) *Message {
	m := &Message{ID: "Q1", From: "a@local.test", Size: int64(len(testMsg)), Ret: "HDRS", EnvID: "env-1",
		Open: func(context.Context) (io.ReadCloser, error) { return bodyOf(testMsg), nil }}
	for _, r := range rcpts {
		m.Recipients = append(m.Recipients, Recipient{Address: r, Notify: []string{"FAILURE", "DELAY"}, ORcpt: "rfc822;orig+2Bx@local.test"})
	}
	return m
}

func TestOrderMX(t *testing.T) {
	mxs := []dns.MX{{Host: "c.test", Pref: 30}, {Host: "a1.test", Pref: 10}, {Host: "b.test", Pref: 20}, {Host: "a2.test.", Pref: 10}, {Host: ".", Pref: 40}}
	seen := map[string]bool{}
	for range 200 {
		c := newLab().client(t, nil)
		got, err := orderMX(mxs, "", c.shuffle)
		if err != nil || len(got) != 4 {
			t.Fatalf("orderMX = %v, %v", got, err)
		}
		if got[2].Host != "b.test" || got[3].Host != "c.test" {
			t.Fatalf("preference order broken: %v", got)
		}
		seen[got[0].Host] = true
	}
	if !seen["a1.test"] || !seen["a2.test"] {
		t.Fatalf("equal preferences are not shuffled: first hosts seen %v", seen)
	}
	// Our own name among the MX hosts: only strictly better ones remain (RFC 5321 5.1).
	got, err := orderMX(mxs, "B.test", nil)
	if err != nil || len(got) != 2 || got[0].Pref != 10 || got[1].Pref != 10 {
		t.Fatalf("as backup MX: %v, %v", got, err)
	}
	if _, err := orderMX(mxs, "a2.test", nil); err != errLoop {
		t.Fatalf("as best MX: %v", err)
	}
}

func TestRoutes(t *testing.T) {
	l := newLab()
	mta := startMTA(t, nil, nil)
	l.dns.MX["null.test"] = []dns.MX{{Host: ".", Pref: 0}}
	l.dns.IP["nomx.test"] = []netip.Addr{netip.MustParseAddr("192.0.2.9")}
	l.mtas["192.0.2.9"] = mta
	l.dns.Fail = map[string]bool{"broken.test": true}
	l.dns.MX["loop.test"] = []dns.MX{{Host: "mail.local.test", Pref: 10}}
	c := l.client(t, nil)
	for _, tc := range []struct {
		rcpt, status string
	}{
		{"x@null.test", "556 5.1.10"},
		{"x@nowhere.test", "550 5.1.2"},
		{"x@broken.test", "451 4.4.3"},
		{"x@loop.test", "554 5.4.6"},
		{"x@nomx.test", "250 2.0.0"}, // no MX: the A record is the implicit MX
	} {
		res := c.Send(context.Background(), message(tc.rcpt))
		if len(res) != 1 || !strings.HasPrefix(res[0].Status(), tc.status) {
			t.Errorf("%s: %+v, want %s", tc.rcpt, res, tc.status)
		}
	}
	if n := len(mta.messages()); n != 1 {
		t.Fatalf("implicit MX got %d messages", n)
	}
}

// TestDeliver: the best MX is down, the next takes the transaction with STARTTLS, per-recipient replies are
// kept, DSN parameters and the DKIM signature travel, and two domains on one host get one transaction each.
func TestDeliver(t *testing.T) {
	l := newLab()
	srvTLS, _ := selfSigned(t, "mx2.remote.test")
	mta := startMTA(t, srvTLS, nil)
	mta.requireTLS = true
	mta.rcptReply["unknown@remote.test"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
	mta.rcptReply["later@remote.test"] = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Greylisted"}
	l.dns.MX["remote.test"] = []dns.MX{{Host: "mx2.remote.test", Pref: 20}, {Host: "mx1.remote.test", Pref: 10}}
	l.dns.MX["other.test"] = []dns.MX{{Host: "mx2.remote.test", Pref: 5}}
	l.host("mx1.remote.test", "192.0.2.1", nil) // refuses connections
	l.host("mx2.remote.test", "192.0.2.2", mta)
	c := l.client(t, nil)
	res := c.Send(context.Background(), message("ok@remote.test", "unknown@remote.test", "later@remote.test", "x@other.test"))
	want := []string{"250 2.0.0", "550 5.1.1 No such user", "451 4.7.1 Greylisted", "250 2.0.0"}
	for i, r := range res {
		if !strings.HasPrefix(r.Status(), want[i]) || r.Remote != "mx2.remote.test[192.0.2.2]" || !r.DSN || r.TLS == "" {
			t.Errorf("result %d = %+v (status %q), want %s", i, r, r.Status(), want[i])
		}
	}
	if !res[0].Delivered() || !res[1].Permanent() || res[2].Permanent() || res[2].Delivered() {
		t.Fatalf("classification: %+v", res)
	}
	got := mta.messages()
	if len(got) != 2 {
		t.Fatalf("MTA got %d transactions, want 2 (one per domain)", len(got))
	}
	slices.SortFunc(got, func(a, b received) int { return strings.Compare(a.rcpts[0], b.rcpts[0]) })
	m := got[0]
	if !m.tls || m.from != "a@local.test" || len(m.rcpts) != 1 || m.rcpts[0] != "ok@remote.test" {
		t.Fatalf("transaction: %+v", m)
	}
	if m.mail.Return != smtp.DSNReturnHeaders || m.mail.EnvelopeID != "env-1" {
		t.Errorf("RET/ENVID not passed: %+v", m.mail)
	}
	if r := m.ropts[0]; len(r.Notify) != 2 || r.OriginalRecipient != "orig+x@local.test" {
		t.Errorf("NOTIFY/ORCPT not passed: %+v", r)
	}
	if !strings.HasPrefix(m.data, "DKIM-Signature: v=1; fake\r\nFrom: a@local.test\r\n") || !strings.Contains(m.data, "\r\n.dot line\r\n") {
		t.Errorf("data = %q", m.data)
	}
}

func TestHostFailures(t *testing.T) {
	l := newLab()
	busy := startMTA(t, nil, nil)
	busy.mailReply = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Too busy"}
	good := startMTA(t, brokenTLS(), nil) // STARTTLS offered but broken: opportunistic TLS falls back to plain
	l.dns.MX["remote.test"] = []dns.MX{{Host: "busy.remote.test", Pref: 10}, {Host: "good.remote.test", Pref: 20}}
	l.host("busy.remote.test", "192.0.2.1", busy)
	l.host("good.remote.test", "192.0.2.2", good)
	c := l.client(t, nil)
	res := c.Send(context.Background(), message("ok@remote.test"))
	if !res[0].Delivered() || res[0].TLS != "" || res[0].Remote != "good.remote.test[192.0.2.2]" {
		t.Fatalf("after a busy host and broken TLS: %+v", res[0])
	}
	// Every host fails temporarily: the last failure is reported as 4xx.
	good.mailReply = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Disk full"}
	res = c.Send(context.Background(), message("ok@remote.test"))
	if res[0].Code != 452 || res[0].Remote != "good.remote.test[192.0.2.2]" {
		t.Fatalf("all hosts busy: %+v", res[0])
	}
	// A 5xx to MAIL fails every recipient permanently, without trying further hosts.
	busy.mailReply = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Go away"}
	res = c.Send(context.Background(), message("a@remote.test", "b@remote.test"))
	if !res[0].Permanent() || !res[1].Permanent() || res[0].Remote != "busy.remote.test[192.0.2.1]" {
		t.Fatalf("5xx at MAIL: %+v", res)
	}
	// A message over the server's SIZE limit is refused before MAIL (RFC 1870).
	busy.mailReply, good.mailReply = nil, nil
	big := message("a@remote.test")
	big.Size = 2 << 20
	if res := c.Send(context.Background(), big); res[0].Code != 552 {
		t.Fatalf("oversized: %+v", res[0])
	}
	// Nobody answers at all.
	l.dns.MX["dead.test"] = []dns.MX{{Host: "dead.remote.test", Pref: 10}}
	l.host("dead.remote.test", "192.0.2.99", nil)
	if res := c.Send(context.Background(), message("a@dead.test")); res[0].Code != 451 || res[0].Enhanced != "4.4.1" {
		t.Fatalf("dead host: %+v", res[0])
	}
}

func TestRelayAndTransport(t *testing.T) {
	l := newLab()
	srvTLS, pool := selfSigned(t, "relay.isp.test")
	relay := startMTA(t, srvTLS, func(s *smtp.Server) { s.AllowInsecureAuth = false })
	l.host("relay.isp.test", "192.0.2.10", relay)
	c := l.client(t, func(o *Options) {
		o.Relay = &Relay{Addr: "relay.isp.test:587", Username: "relayuser", Password: "secret"}
		o.TLSConfig = &tls.Config{RootCAs: pool}
	})
	res := c.Send(context.Background(), message("a@one.test", "b@two.test"))
	if !res[0].Delivered() || !res[1].Delivered() {
		t.Fatalf("via relay: %+v", res)
	}
	if got := relay.messages(); len(got) != 1 || len(got[0].rcpts) != 2 || !got[0].tls || len(relay.auth) != 1 {
		t.Fatalf("relay got %+v, auth %v (want one TLS transaction after AUTH)", got, relay.auth)
	}
	// A relay whose certificate does not verify gets no password.
	c2 := l.client(t, func(o *Options) {
		o.Relay = &Relay{Addr: "relay.isp.test:587", Username: "relayuser", Password: "secret"}
	})
	if res := c2.Send(context.Background(), message("a@one.test")); res[0].Code/100 != 4 || res[0].Enhanced != "4.7.5" {
		t.Fatalf("unverified relay: %+v", res[0])
	}
	// A relay without TLS gets no password either.
	plain := startMTA(t, nil, func(s *smtp.Server) { s.AllowInsecureAuth = true })
	l.host("plain.isp.test", "192.0.2.11", plain)
	c3 := l.client(t, func(o *Options) {
		o.Relay = &Relay{Addr: "plain.isp.test:25", Username: "relayuser", Password: "secret"}
	})
	if res := c3.Send(context.Background(), message("a@one.test")); res[0].Code/100 != 4 || len(plain.messages()) != 0 {
		t.Fatalf("plain relay: %+v", res[0])
	}
	// The transport map sends a domain (and its subdomains) to a fixed host, skipping MX lookup.
	inner := startMTA(t, nil, nil)
	l.mtas["192.0.2.20"] = inner
	c4 := l.client(t, func(o *Options) {
		o.Transports = map[string]string{"corp.test": "[192.0.2.20]:2525", ".corp.test": "192.0.2.20"}
	})
	res = c4.Send(context.Background(), message("a@corp.test", "b@eu.corp.test"))
	if !res[0].Delivered() || !res[1].Delivered() || len(inner.messages()) != 2 {
		t.Fatalf("transport: %+v", res)
	}
}
