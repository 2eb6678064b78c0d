//go:build integration

package integration

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	mdns "github.com/miekg/dns"
)

// policyHost serves MTA-STS policies over HTTPS on addr, one body per Host (mta-sts.<domain>), with a
// certificate issued by the given lab host's built-in CA (`postern ca issue`).
type policyHost struct {
	mu       sync.Mutex        // guards policies and fetches
	policies map[string]string // by host name
	fetches  map[string]int
}

func startPolicyHost(t *testing.T, ca *labHost, addr string, policies map[string]string) *policyHost {
	t.Helper()
	var names []string
	for n := range policies {
		names = append(names, n)
	}
	prefix := filepath.Join(t.TempDir(), "mta-sts")
	ca.run(append(append([]string{"ca", "issue"}, names...), "--out", prefix)...)
	cert, err := tls.LoadX509KeyPair(prefix+".crt", prefix+".key")
	if err != nil {
		t.Fatal(err)
	}
	ph := &policyHost{policies: policies, fetches: map[string]int{}}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host, _, _ := net.SplitHostPort(r.Host)
			ph.mu.Lock()
			body, ok := ph.policies[host]
			ph.fetches[host]++
			ph.mu.Unlock()
			if !ok || r.URL.Path != "/.well-known/mta-sts.txt" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, body)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("policy server: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ph
}

func (ph *policyHost) fetched(host string) int {
	ph.mu.Lock()
	defer ph.mu.Unlock()
	return ph.fetches[host]
}

// startSecureDNS serves records (zone file syntax) on 127.0.0.1:port over UDP and TCP, every answer with the
// AD bit set, as a DNSSEC-validating resolver does for a signed zone. dnsmasq cannot play this part: it sets AD
// only when it validates (or, with --proxy-dnssec, copies it from an upstream), never for its own records.
func startSecureDNS(t *testing.T, port int, records []string) {
	t.Helper()
	zone := map[string][]mdns.RR{}
	for _, s := range records {
		rr, err := mdns.NewRR(s)
		if err != nil {
			t.Fatalf("record %q: %v", s, err)
		}
		name := strings.ToLower(rr.Header().Name)
		zone[name] = append(zone[name], rr)
	}
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(req)
		m.Authoritative, m.AuthenticatedData = true, true
		q := req.Question[0]
		rrs, exists := zone[strings.ToLower(q.Name)]
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
		if !exists {
			m.Rcode = mdns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for _, network := range []string{"udp", "tcp"} {
		started := make(chan struct{})
		srv := &mdns.Server{Addr: addr, Net: network, Handler: handler, NotifyStartedFunc: func() { close(started) }}
		errc := make(chan error, 1)
		go func() { errc <- srv.ListenAndServe() }()
		select {
		case <-started:
		case err := <-errc:
			t.Fatalf("DNS server (%s): %v", network, err)
		}
		t.Cleanup(func() { srv.Shutdown() })
	}
}

// smtpCert returns the certificate a lab host presents after STARTTLS on its SMTP port.
func (h *labHost) smtpCert() *x509.Certificate {
	h.t.Helper()
	var leaf *x509.Certificate
	cfg := &tls.Config{InsecureSkipVerify: true, VerifyConnection: func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) > 0 {
			leaf = cs.PeerCertificates[0]
		}
		return nil
	}}
	c, err := smtp.DialStartTLS(h.at(h.ports.SMTP), cfg)
	if err != nil {
		h.t.Fatalf("STARTTLS to %s: %v", h.domain, err)
	}
	c.Quit()
	if leaf == nil {
		h.t.Fatalf("%s presented no certificate", h.domain)
	}
	return leaf
}

// tlsa311 is the "3 1 1" (DANE-EE, SPKI, SHA-256) TLSA record data of cert, in hex.
func tlsa311(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return fmt.Sprintf("%x", sum)
}

// logLines returns the mail log lines that contain every one of words.
func logLines(log string, words ...string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		ok := l != ""
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// submitRequireTLS sends msg over submission with MAIL FROM ... REQUIRETLS (RFC 8689).
func (h *labHost) submitRequireTLS(from, password, to, msg string) {
	h.t.Helper()
	c, err := smtp.DialStartTLS(h.at(h.ports.Submission), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		h.t.Fatalf("submission to %s: %v", h.domain, err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", from, password)); err != nil {
		h.t.Fatalf("AUTH as %s: %v", from, err)
	}
	if err := c.Mail(from, &smtp.MailOptions{RequireTLS: true}); err != nil {
		h.t.Fatalf("MAIL FROM REQUIRETLS: %v", err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		h.t.Fatalf("RCPT %s: %v", to, err)
	}
	w, err := c.Data()
	if err != nil {
		h.t.Fatal(err)
	}
	io.WriteString(w, msg)
	if err := w.Close(); err != nil {
		h.t.Fatalf("DATA: %v", err)
	}
	c.Quit()
}
