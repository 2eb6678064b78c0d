// Package dnsbl checks the connecting client's IP against DNS blocklists (DNSBLs, "RBLs"; RFC 5782).
//
// Each configured zone is asked at connect, all at once: for 192.0.2.99 and zone bl.example the A records of
// 99.2.0.192.bl.example (RFC 5782 2.1), for an IPv6 client its 32 reversed nibbles (2.4). An answer in 127.0.0.0/8
// means listed (127.0.0.1 is never a listing, 2.1; 127.255.255.0/24 is the code some lists return to refused
// resolvers, not a listing); its TXT record, when there is one, says why. The weights of the zones that list the
// client are summed: at or above RejectWeight the client is refused (554 5.7.1 with the first zone's reason,
// answered at RCPT by the SMTP server, like Postfix's reject_rbl_client with smtpd_delay_reject); below it, each
// weight unit adds ScorePerWeight to the spam score (like SpamAssassin's RCVD_IN_* rules).
//
// A zone that cannot be asked (timeout, SERVFAIL) counts as not listing the client: a blocklist outage must not
// stop the mail.
//
// Config keys (wired by internal/app): [antispam] dnsbl → Options.Zones ("zone" or "zone=weight"),
// dnsbl_reject_weight → RejectWeight, dnsbl_score → ScorePerWeight.
package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/filter"
)

// Zone is one blocklist and the weight of a listing in it.
type Zone struct {
	Name   string
	Weight float64
}

// ParseZone parses "zone" (weight 1) or "zone=weight".
func ParseZone(s string) (Zone, error) {
	name, w, hasW := strings.Cut(strings.TrimSpace(s), "=")
	name = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	z := Zone{Name: name, Weight: 1}
	if name == "" || strings.ContainsAny(name, " /@") {
		return z, fmt.Errorf("dnsbl: %q is not a zone name", s)
	}
	if hasW {
		f, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err != nil || f < 0 {
			return z, fmt.Errorf("dnsbl: %q: weight is not a number >= 0", s)
		}
		z.Weight = f
	}
	return z, nil
}

// Options configure the check.
type Options struct {
	Resolver dns.Resolver // required
	Zones    []Zone       // required
	// RejectWeight is the summed weight at which a client is refused (default 1: any listing in a zone of weight
	// 1 refuses, the classic RBL behaviour). ScorePerWeight is the spam score a listing below it adds per unit of
	// weight (default 3).
	RejectWeight   float64
	ScorePerWeight float64
	Logger         *slog.Logger
}

// Check is the DNSBL check; safe for concurrent use.
type Check struct {
	o Options
}

// New returns a Check.
func New(o Options) (*Check, error) {
	if o.Resolver == nil || len(o.Zones) == 0 {
		return nil, errors.New("dnsbl: a resolver and at least one zone are required")
	}
	if o.RejectWeight <= 0 {
		o.RejectWeight = 1
	}
	if o.ScorePerWeight == 0 {
		o.ScorePerWeight = 3
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Check{o: o}, nil
}

// Name implements filter.Check.
func (c *Check) Name() string { return "dnsbl" }

// Listing is one zone that lists the client.
type Listing struct {
	Zone    Zone
	Answers []netip.Addr
	Reason  string // the TXT record, "" when there is none
}

// QueryName returns the name to look up for ip in zone (RFC 5782 2.1, 2.4).
func QueryName(ip netip.Addr, zone string) string {
	ip = ip.Unmap()
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d", a[3], a[2], a[1], a[0])
	} else {
		a := ip.As16()
		const hex = "0123456789abcdef"
		for i := len(a) - 1; i >= 0; i-- {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteByte(hex[a[i]&0xf])
			b.WriteByte('.')
			b.WriteByte(hex[a[i]>>4])
		}
	}
	return b.String() + "." + zone
}

// listed reports whether an A answer is a listing: in 127.0.0.0/8, neither 127.0.0.1 (RFC 5782 2.1) nor the
// 127.255.255.0/24 error codes.
func listed(a netip.Addr) bool {
	a = a.Unmap()
	if !a.Is4() {
		return false
	}
	b := a.As4()
	return b[0] == 127 && a != netip.AddrFrom4([4]byte{127, 0, 0, 1}) && !(b[1] == 255 && b[2] == 255)
}

// Lookup asks every zone about ip at once and returns the listings, in zone order.
func (c *Check) Lookup(ctx context.Context, ip netip.Addr) []Listing {
	res := make([]*Listing, len(c.o.Zones))
	var wg sync.WaitGroup
	for i, z := range c.o.Zones {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = c.ask(ctx, ip, z)
		}()
	}
	wg.Wait()
	var out []Listing
	for _, l := range res {
		if l != nil {
			out = append(out, *l)
		}
	}
	return out
}

// ask looks ip up in one zone; nil when it is not listed or the zone did not answer.
func (c *Check) ask(ctx context.Context, ip netip.Addr, z Zone) *Listing {
	name := QueryName(ip, z.Name)
	addrs, _, err := c.o.Resolver.LookupIP(ctx, name)
	if err != nil {
		if !errors.Is(err, dns.ErrNotFound) && !errors.Is(err, dns.ErrNoData) {
			c.o.Logger.Warn("dnsbl lookup failed; not listed", "zone", z.Name, "ip", ip.String(), "err", err)
		}
		return nil
	}
	l := &Listing{Zone: z}
	for _, a := range addrs {
		if listed(a) {
			l.Answers = append(l.Answers, a)
		} else if a.Is4() && a.As4()[0] == 127 {
			c.o.Logger.Warn("dnsbl answered an error code; not listed", "zone", z.Name, "answer", a.String())
		}
	}
	if len(l.Answers) == 0 {
		return nil
	}
	if txts, _, err := c.o.Resolver.LookupTXT(ctx, name); err == nil && len(txts) > 0 {
		l.Reason = sanitize(txts[0])
	}
	return l
}

// sanitize keeps a zone's TXT text fit for one SMTP reply line.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 32 || r > 126 {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.TrimSpace(s)
}

// Connect implements filter.ConnectChecker.
func (c *Check) Connect(ctx context.Context, t *filter.Txn) filter.Verdict {
	ip := t.Conn.IP
	if t.Conn.Trusted || !worthAsking(ip) { // a trusted client's refusal would be waived: see filter.Conn
		return filter.Verdict{}
	}
	ls := c.Lookup(ctx, ip)
	if len(ls) == 0 {
		return filter.Verdict{}
	}
	var sum float64
	zones := make([]string, len(ls))
	for i, l := range ls {
		sum += l.Zone.Weight
		zones[i] = fmt.Sprintf("%s(%s)", l.Zone.Name, l.Answers[0])
	}
	t.Values[c.Name()] = ls
	reason := fmt.Sprintf("listed in %s, weight %.1f", strings.Join(zones, ","), sum)
	if sum >= c.o.RejectWeight {
		// Postfix's wording, which admins and senders' postmasters recognise.
		msg := fmt.Sprintf("Service unavailable; Client host [%s] blocked using %s", ip, ls[0].Zone.Name)
		if ls[0].Reason != "" {
			msg += "; " + ls[0].Reason
		}
		return filter.Verdict{Action: filter.Reject, Code: 554, Enhanced: "5.7.1", Message: msg, Reason: reason}
	}
	return filter.Verdict{Action: filter.Tag, Score: sum * c.o.ScorePerWeight, Symbol: "DNSBL", Reason: reason}
}

// worthAsking: private (RFC 1918, ULA) and link-local clients are never on a public list, and 127.0.0.1 / ::1
// are local programs. Other loopback addresses are asked about, so a test can connect from 127.0.0.2, the
// address every list must list (RFC 5782 5).
func worthAsking(ip netip.Addr) bool {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid(), ip.IsPrivate(), ip.IsLinkLocalUnicast(), ip.IsUnspecified():
		return false
	case ip == netip.IPv6Loopback(), ip == netip.AddrFrom4([4]byte{127, 0, 0, 1}):
		return false
	}
	return true
}
