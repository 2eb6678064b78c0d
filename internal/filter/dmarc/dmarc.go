// Package dmarc is the DMARC check (RFC 7489) at the DATA stage: it finds the policy of the RFC5322.From domain
// (_dmarc.DOMAIN, or _dmarc.ORGDOMAIN — the Organizational Domain from the Public Suffix List), decides whether
// SPF or DKIM authenticated an aligned domain (relaxed or strict, adkim/aspf), records an Authentication-Results
// "dmarc" result with header.from, and applies the policy of failing mail:
//
//	p=reject      550 5.7.1 (Options.RejectAsQuarantine: file into Junk instead)
//	p=quarantine  file into Junk
//	p=none        nothing
//
// sp= applies when the policy was found at the Organizational Domain of a subdomain; pct= samples the messages the
// policy applies to, the rest get the next milder policy (RFC 7489 6.6.4).
//
// It reads the results of earlier checks from Txn.Values: "spf" (*spf.Result), "dkim" ([]dkim.Signature) and "arc"
// (*arc.Result, for Options.TrustedSealers), so the pipeline order must be spf, dkim, arc, dmarc. Without spf and
// dkim neither can align and every policy-bearing domain fails.
// Authenticated (submission) clients are not checked.
//
// Config keys (wired by internal/app): [antispam] dmarc = true, dmarc_policy = "apply" | "junk"
// (RejectAsQuarantine) | "none" (recorded only), dmarc_fail_score = 0 (FailScore, added when DMARC fails, whatever
// the policy), arc_trusted_sealers = [] (TrustedSealers).
package dmarc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/mail"
	"strings"

	"github.com/emersion/go-msgauth/authres"
	"golang.org/x/net/idna"

	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/arc"
	"github.com/postern/postern/internal/filter/dkim"
	"github.com/postern/postern/internal/filter/spf"
)

// Name is the check's name and its key in Txn.Values.
const Name = "dmarc"

// Options configure the check.
type Options struct {
	// Resolver looks up the _dmarc TXT records; required.
	Resolver dns.Resolver
	// RejectAsQuarantine files mail of p=reject domains that fails DMARC into Junk instead of refusing it (some
	// admins prefer not to lose mailing-list traffic).
	RejectAsQuarantine bool
	// FailScore is added when DMARC fails (default 0).
	FailScore float64
	// TrustedSealers are ARC sealer domains (d= of an ARC-Seal) this receiver trusts to forward mail faithfully,
	// e.g. mailing lists the users read. When DMARC fails but the message carries a passing ARC chain whose newest
	// seal is by one of them, the policy is not applied (RFC 8617 7.2.1, RFC 7489 6.7 local policy). Needs the arc
	// check before this one.
	TrustedSealers []string
	// Sample reports whether a message falls within pct percent (default: random); tests pin it.
	Sample func(pct int) bool
	Logger *slog.Logger
}

// Result is what the check found, kept in Txn.Values["dmarc"].
type Result struct {
	Value      authres.ResultValue // pass, fail, none, temperror, permerror
	FromDomain string
	Record     *Record // nil when no policy was found
	Applied    Policy  // the policy applied to this message after sp=, pct= and an ARC override ("" on pass)
	Override   string  // the trusted ARC sealer that spared a failing message, if any
	Reason     string
}

// Check is the DMARC check.
type Check struct {
	opts Options
}

var _ filter.DataChecker = (*Check)(nil)

// New returns the check.
func New(o Options) (*Check, error) {
	if o.Resolver == nil {
		return nil, fmt.Errorf("dmarc: no resolver")
	}
	if o.Sample == nil {
		o.Sample = func(pct int) bool { return rand.IntN(100) < pct }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Check{opts: o}, nil
}

// Name implements filter.Check.
func (c *Check) Name() string { return Name }

// Data evaluates DMARC for the message and applies the domain's policy.
func (c *Check) Data(ctx context.Context, t *filter.Txn, m *filter.Message) filter.Verdict {
	if t.Conn != nil && t.Conn.AuthUser != "" {
		return filter.Verdict{}
	}
	r := c.Evaluate(ctx, t, m)
	t.Values[Name] = &r
	t.AddResult(&authres.DMARCResult{Value: r.Value, From: r.FromDomain, Reason: r.Reason})
	if r.Value != authres.ResultFail {
		return filter.Verdict{}
	}
	reason := fmt.Sprintf("dmarc=fail header.from=%s policy=%s (%s)", r.FromDomain, r.Applied, r.Reason)
	v := filter.Verdict{Reason: reason}
	if c.opts.FailScore > 0 {
		v.Action, v.Score, v.Symbol = filter.Tag, c.opts.FailScore, "DMARC_FAIL"
	}
	switch {
	case r.Applied == PolicyReject && !c.opts.RejectAsQuarantine:
		return filter.Verdict{Action: filter.Reject, Code: 550, Enhanced: "5.7.1", Reason: reason,
			Message: fmt.Sprintf("Message rejected by the DMARC policy of %s", r.FromDomain)}
	case r.Applied == PolicyReject, r.Applied == PolicyQuarantine:
		v.Action, v.Junk = filter.Tag, true
	}
	return v
}

// Evaluate runs DMARC (RFC 7489 6.6) without acting on it.
func (c *Check) Evaluate(ctx context.Context, t *filter.Txn, m *filter.Message) Result {
	from, err := fromDomain(m)
	if err != nil {
		// 6.6.1: without exactly one author domain there is nothing to evaluate.
		return Result{Value: authres.ResultNone, Reason: err.Error()}
	}
	r := Result{FromDomain: from}
	rec, atOrg, err := c.lookupPolicy(ctx, from)
	switch {
	case dns.IsTemporary(err):
		r.Value, r.Reason = authres.ResultTempError, "policy lookup failed"
		return r
	case err != nil:
		r.Value, r.Reason = authres.ResultPermError, err.Error()
		return r
	case rec == nil:
		r.Value, r.Reason = authres.ResultNone, "no policy"
		return r
	}
	r.Record = rec
	if why, ok := alignedPass(t, rec, from); ok {
		r.Value, r.Reason = authres.ResultPass, why
		return r
	}
	r.Value, r.Reason = authres.ResultFail, "no aligned SPF or DKIM pass"
	r.Applied = rec.Policy
	if atOrg && rec.SubdomainPolicy != "" {
		r.Applied = rec.SubdomainPolicy // 6.3 sp: the policy for subdomains of the Organizational Domain
	}
	if sealer := c.trustedChain(t); sealer != "" && r.Applied != PolicyNone {
		r.Applied, r.Override = PolicyNone, sealer
		r.Reason += ", policy not applied: ARC chain sealed by trusted " + sealer
		return r
	}
	// 6.6.4: a message outside pct gets the next milder policy.
	if r.Applied != PolicyNone && rec.Percent < 100 && !c.opts.Sample(rec.Percent) {
		if r.Applied == PolicyReject {
			r.Applied = PolicyQuarantine
		} else {
			r.Applied = PolicyNone
		}
	}
	return r
}

// trustedChain returns the newest ARC sealer when the chain passed and that sealer is trusted, else "".
func (c *Check) trustedChain(t *filter.Txn) string {
	r, ok := t.Values[arc.Name].(*arc.Result)
	if !ok || r.Value != authres.ResultPass || len(r.Sealers) == 0 {
		return ""
	}
	newest := strings.ToLower(r.Sealers[len(r.Sealers)-1])
	for _, d := range c.opts.TrustedSealers {
		if strings.EqualFold(strings.TrimSuffix(d, "."), newest) {
			return newest
		}
	}
	return ""
}

// alignedPass reports whether SPF or a DKIM signature passed for a domain aligned with from (RFC 7489 3.1, 4.2).
func alignedPass(t *filter.Txn, rec *Record, from string) (string, bool) {
	if sigs, ok := t.Values[dkim.Name].([]dkim.Signature); ok {
		for _, s := range sigs {
			if s.Value == authres.ResultPass && aligned(s.Domain, from, rec.StrictDKIM) {
				return "dkim " + s.Domain + " aligned", true
			}
		}
	}
	// 3.1.2: SPF authenticates the MAIL FROM domain, or the HELO name for the null reverse-path.
	if r, ok := t.Values[spf.Name].(*spf.Result); ok && r.Value == authres.ResultPass && aligned(r.Domain, from, rec.StrictSPF) {
		return "spf " + r.Domain + " aligned", true
	}
	return "", false
}

// lookupPolicy finds the policy record (RFC 7489 6.6.3): at _dmarc.FROM, else at _dmarc.ORGDOMAIN. atOrg tells
// which. No record (or several) at both is (nil, false, nil).
func (c *Check) lookupPolicy(ctx context.Context, from string) (rec *Record, atOrg bool, err error) {
	rec, err = c.lookup(ctx, from)
	if rec != nil || err != nil {
		return rec, false, err
	}
	org, oerr := OrgDomain(from)
	if oerr != nil || org == from {
		return nil, false, nil
	}
	rec, err = c.lookup(ctx, org)
	return rec, rec != nil, err
}

func (c *Check) lookup(ctx context.Context, domain string) (*Record, error) {
	txts, _, err := c.opts.Resolver.LookupTXT(ctx, "_dmarc."+domain)
	if errors.Is(err, dns.ErrNotFound) || errors.Is(err, dns.ErrNoData) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// 6.6.3 step 2: records that do not start with v=DMARC1 are discarded; step 6: one without a usable
	// policy is as if there were none.
	var found []*Record
	dmarcRecords := 0
	for _, txt := range txts {
		rec, err := ParseRecord(txt)
		if errors.Is(err, errNotDMARC) {
			continue
		}
		dmarcRecords++
		if err == nil {
			found = append(found, rec)
		}
	}
	if dmarcRecords != 1 || len(found) != 1 {
		return nil, nil // step 3: several DMARC records means no DMARC processing
	}
	return found[0], nil
}

// fromDomain returns the domain of the single author address (RFC 7489 6.6.1). Several From fields, or several
// addresses of different domains, cannot be evaluated.
func fromDomain(m *filter.Message) (string, error) {
	fields := m.Header.Values("From")
	if len(fields) != 1 {
		return "", fmt.Errorf("%d From fields", len(fields))
	}
	addrs, err := mail.ParseAddressList(fields[0])
	if err != nil || len(addrs) == 0 {
		return "", fmt.Errorf("unparseable From")
	}
	domain := ""
	for _, a := range addrs {
		at := strings.LastIndexByte(a.Address, '@')
		if at < 0 {
			return "", fmt.Errorf("the From address has no domain")
		}
		d, err := idna.Lookup.ToASCII(strings.ToLower(strings.TrimSuffix(a.Address[at+1:], ".")))
		if err != nil || d == "" {
			return "", fmt.Errorf("bad From domain")
		}
		if domain != "" && d != domain {
			return "", fmt.Errorf("the From field has several domains")
		}
		domain = d
	}
	return domain, nil
}
