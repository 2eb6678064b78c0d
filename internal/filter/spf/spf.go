// Package spf is the SPF check (RFC 7208): is the connecting client allowed to send mail for the MAIL FROM domain
// (or, for the null reverse-path, for its HELO name — RFC 7208 2.3)? It runs at the MAIL stage, records an
// Authentication-Results "spf" result (smtp.mailfrom or smtp.helo) and turns the result into a verdict:
//
//	pass, none, neutral  accept
//	fail                 tag with Options.FailScore (default 3.5); 550 5.7.23 when Options.RejectFail is set
//	softfail             tag with Options.SoftFailScore (default 1.0)
//	permerror            tag with Options.PermErrorScore (default 0.5)
//	temperror            451 4.4.3 when Options.TempErrorTempfail is set (RFC 7208 8.6); otherwise accept
//
// The evaluation itself is blitiri.com.ar/go/spf with our dns.Resolver behind it (the ptr mechanism needs a
// dns.PTRResolver; dns.Client is one), so the config key dns.resolver is honoured.
//
// For later checks the result is kept in Txn.Values["spf"] as a *Result; DMARC reads it (RFC 7489 3.1.2).
// Pipeline order: spf, dkim, arc, dmarc.
//
// Config keys (H6 wires them): [antispam] spf = true (on by default on the MX listener), spf_reject_fail = false,
// spf_fail_score = 3.5, spf_softfail_score = 1.0, spf_permerror_score = 0.5, spf_temperror = "accept" | "tempfail".
package spf

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"

	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/filter"
)

// Name is the check's name and its key in Txn.Values.
const Name = "spf"

// Default scores.
const (
	DefaultFailScore      = 3.5
	DefaultSoftFailScore  = 1.0
	DefaultPermErrorScore = 0.5
)

// Options configure the check. The zero value of each score means its default; a negative score means none.
type Options struct {
	// Resolver answers the lookups; required. A dns.PTRResolver also serves the ptr mechanism.
	Resolver dns.Resolver
	// RejectFail refuses mail whose SPF result is fail with 550 5.7.23 (RFC 7208 8.4, RFC 7372 3.2) instead of
	// only adding FailScore. Off by default: DMARC makes the better-informed decision on SPF failures.
	RejectFail bool
	// TempErrorTempfail answers a DNS failure during the check with 451 4.4.3 (RFC 7208 8.6) instead of
	// accepting the mail without an SPF verdict.
	TempErrorTempfail bool
	FailScore         float64
	SoftFailScore     float64
	PermErrorScore    float64
	Logger            *slog.Logger
}

// Result is what the check found, kept in Txn.Values["spf"] for DMARC.
type Result struct {
	Value    authres.ResultValue // pass, fail, softfail, neutral, none, temperror, permerror
	Domain   string              // the domain that was checked (MAIL FROM domain, or the HELO name)
	Identity string              // "mailfrom" or "helo"
	Reason   string              // the library's explanation, for the log
}

// Check is the SPF check.
type Check struct {
	opts Options
}

var _ filter.MailChecker = (*Check)(nil)

// New returns the check.
func New(o Options) (*Check, error) {
	if o.Resolver == nil {
		return nil, fmt.Errorf("spf: no resolver")
	}
	o.FailScore = score(o.FailScore, DefaultFailScore)
	o.SoftFailScore = score(o.SoftFailScore, DefaultSoftFailScore)
	o.PermErrorScore = score(o.PermErrorScore, DefaultPermErrorScore)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Check{opts: o}, nil
}

func score(v, def float64) float64 {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// Name implements filter.Check.
func (c *Check) Name() string { return Name }

// Mail checks the reverse-path (or the HELO name for <>) against the client's address.
func (c *Check) Mail(ctx context.Context, t *filter.Txn) filter.Verdict {
	if t.Conn == nil || t.Conn.AuthUser != "" || !t.Conn.IP.IsValid() {
		return filter.Verdict{} // an authenticated client is judged by its login, not by SPF
	}
	helo := strings.TrimSuffix(strings.Trim(t.Conn.Helo, "[]"), ".")
	sender, res := t.From.String(), &authres.SPFResult{}
	r := Result{Identity: "mailfrom", Domain: t.From.Domain}
	if t.From.IsZero() {
		// RFC 7208 2.4: for the null reverse-path, check "postmaster@" the HELO identity.
		sender, r.Identity, r.Domain = "postmaster@"+helo, "helo", strings.ToLower(helo)
		res.Helo = helo
	} else {
		res.From = sender
	}
	r.Value, r.Reason = Evaluate(ctx, c.opts.Resolver, t.Conn.IP, helo, sender)
	res.Value = r.Value
	t.Values[Name] = &r
	t.AddResult(res)
	return c.verdict(r)
}

func (c *Check) verdict(r Result) filter.Verdict {
	reason := fmt.Sprintf("spf=%s (%s %s: %s)", r.Value, r.Identity, r.Domain, r.Reason)
	switch r.Value {
	case authres.ResultFail:
		if c.opts.RejectFail {
			return filter.Verdict{Action: filter.Reject, Code: 550, Enhanced: "5.7.23", Reason: reason,
				Message: fmt.Sprintf("SPF check failed: %s does not allow this host to send its mail", r.Domain)}
		}
		return tag(c.opts.FailScore, "SPF_FAIL", reason)
	case authres.ResultSoftFail:
		return tag(c.opts.SoftFailScore, "SPF_SOFTFAIL", reason)
	case authres.ResultPermError:
		return tag(c.opts.PermErrorScore, "SPF_PERMERROR", reason)
	case authres.ResultTempError:
		if c.opts.TempErrorTempfail {
			return filter.Verdict{Action: filter.Tempfail, Code: 451, Enhanced: "4.4.3", Reason: reason,
				Message: "SPF check failed temporarily, try again later"}
		}
		return filter.Verdict{Reason: reason}
	}
	return filter.Verdict{}
}

func tag(score float64, symbol, reason string) filter.Verdict {
	if score == 0 {
		return filter.Verdict{Reason: reason}
	}
	return filter.Verdict{Action: filter.Tag, Score: score, Symbol: symbol, Reason: reason}
}

// Evaluate runs check_host() (RFC 7208 4) for ip, helo and sender (local@domain, or a bare domain for a HELO
// check) and returns the result and a short explanation.
func Evaluate(ctx context.Context, r dns.Resolver, ip netip.Addr, helo, sender string) (authres.ResultValue, string) {
	res, err := spf.CheckHostWithSender(net.IP(ip.Unmap().AsSlice()), helo, sender,
		spf.WithContext(ctx), spf.WithResolver(resolver{r}))
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	return authres.ResultValue(res), reason
}
