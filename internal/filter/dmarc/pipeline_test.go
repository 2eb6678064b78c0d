package dmarc

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"

	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/arc"
	"github.com/postern/postern/internal/filter/dkim"
	"github.com/postern/postern/internal/filter/internal/sharedtest"
	"github.com/postern/postern/internal/filter/spf"
	"github.com/postern/postern/internal/mail"
)

// TestPipeline runs the four authentication checks in their documented order (spf, dkim, arc, dmarc) through a
// real filter.Pipeline on the RFC 8463 A.3 message, whose two signatures are by football.example.com.
func TestPipeline(t *testing.T) {
	raw := sharedtest.Read(t, "dkim/rfc-vectors/rfc8463-A3.eml")
	raw = bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	res := &dns.Fake{
		TXT: map[string][]string{
			"brisbane._domainkey.football.example.com": {"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
			"_dmarc.football.example.com":              {"v=DMARC1; p=reject"},
			"football.example.com":                     {"v=spf1 ip4:192.0.2.0/24 -all"},
			"list.example.net":                         {"v=spf1 ip4:198.51.100.0/24 -all"},
		},
	}
	spfc, _ := spf.New(spf.Options{Resolver: res})
	dkimc, _ := dkim.New(dkim.Options{Resolver: res})
	arcc, _ := arc.New(arc.Options{Resolver: res})
	dmarcc, _ := New(Options{Resolver: res})
	p := filter.New(filter.Options{Checks: []filter.Check{spfc, dkimc, arcc, dmarcc}, AuthServID: "mx.example.org"})

	run := func(ip, from string, msg []byte) filter.Outcome {
		s, _ := p.Connect(context.Background(), filter.Conn{IP: netip.MustParseAddr(ip), Listener: "smtp"})
		s.Helo(context.Background(), "client.example")
		addr, _ := mail.ParseAddress(from)
		if v := s.Mail(context.Background(), "Q1", addr); v.Action >= filter.Tempfail {
			t.Fatalf("MAIL: %+v", v)
		}
		return s.Data(context.Background(), rawMessage(t, msg))
	}

	// Relayed by a list with the signature intact: SPF passes for the list's own (unaligned) domain, DKIM
	// aligns with From, DMARC passes.
	o := run("198.51.100.7", "bounces@list.example.net", raw)
	ar := header(o, "Authentication-Results")
	for _, want := range []string{"mx.example.org;", "spf=pass smtp.mailfrom=bounces@list.example.net", "dkim=pass", "header.s=brisbane", "arc=none", "dmarc=pass", "header.from=football.example.com"} {
		if !strings.Contains(ar, want) {
			t.Errorf("Authentication-Results lacks %q:\n%s", want, ar)
		}
	}
	if o.Verdict.Action >= filter.Tempfail || o.Junk {
		t.Errorf("outcome %+v", o)
	}

	// Body changed in transit and sent from an address football.example.com does not allow: DMARC fails, p=reject.
	o = run("203.0.113.9", "joe@football.example.com", bytes.Replace(raw, []byte("hungry"), []byte("thirsty"), 1))
	if o.Verdict.Action != filter.Reject {
		t.Fatalf("forged message: %+v", o)
	}
	if code, enh, _ := o.Verdict.Reply("data"); code != 550 || enh != "5.7.1" {
		t.Errorf("reply %d %s", code, enh)
	}
}

func header(o filter.Outcome, name string) string {
	for _, h := range o.Headers {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// rawMessage wraps raw bytes as the DATA-stage message.
func rawMessage(t *testing.T, raw []byte) *filter.Message {
	t.Helper()
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return &filter.Message{Size: int64(len(raw)), Header: h,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }}
}
