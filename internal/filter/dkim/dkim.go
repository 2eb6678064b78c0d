// Package dkim verifies the DKIM signatures of a received message (RFC 6376; Ed25519, RFC 8463) at the DATA
// stage, with emersion/go-msgauth's verifier and our dns.Resolver for the key records (so the config key
// dns.resolver is honoured and tests use dns.Fake).
//
// Every signature gives one Authentication-Results "dkim" result (RFC 8601 2.7.1) with header.d, header.i,
// header.s, header.a and the first characters of header.b (RFC 6008: tells several signatures of one domain apart);
// a message without signatures gives dkim=none. At most Options.MaxSignatures (default 10) signatures are verified
// — each costs a DNS lookup and a public-key operation, and a message with hundreds of them is an attack.
//
// DKIM alone never rejects: a broken signature is what an unsigned message is (RFC 6376 6.3). The results are kept in
// Txn.Values["dkim"] as []Signature for DMARC (RFC 7489 3.1.1) and the scoring rules. Pipeline order: spf, dkim,
// arc, dmarc.
//
// Config keys (H6 wires them): [antispam] dkim_verify = true, dkim_max_signatures = 10, dkim_fail_score = 0.
package dkim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/authres"
	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/filter"
)

// Name is the check's name and its key in Txn.Values.
const Name = "dkim"

// DefaultMaxSignatures is how many signatures are verified when Options.MaxSignatures is zero.
const DefaultMaxSignatures = 10

// Options configure the check.
type Options struct {
	// Resolver looks up the key records (selector._domainkey.domain TXT); required.
	Resolver dns.Resolver
	// MaxSignatures bounds the signatures verified per message (default 10); the rest are ignored.
	MaxSignatures int
	// FailScore is added once when a signature fails to verify (default 0: DMARC decides).
	FailScore float64
	Logger    *slog.Logger
}

// Signature is the outcome of one DKIM-Signature, in header order.
type Signature struct {
	Value      authres.ResultValue // pass, fail, neutral, temperror, permerror
	Domain     string              // d= (the SDID), lower-case
	Identifier string              // i= (the AUID)
	Selector   string              // s=
	Algorithm  string              // a=
	B          string              // the start of b=, to tell signatures apart
	Reason     string              // why it did not pass, in short (for the header)
	Detail     string              // the whole error (for the mail log)
}

// Check is the DKIM verifier.
type Check struct {
	opts Options
}

var _ filter.DataChecker = (*Check)(nil)

// New returns the check.
func New(o Options) (*Check, error) {
	if o.Resolver == nil {
		return nil, fmt.Errorf("dkim: no resolver")
	}
	if o.MaxSignatures <= 0 {
		o.MaxSignatures = DefaultMaxSignatures
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Check{opts: o}, nil
}

// Name implements filter.Check.
func (c *Check) Name() string { return Name }

// Data verifies the message's signatures.
func (c *Check) Data(ctx context.Context, t *filter.Txn, m *filter.Message) filter.Verdict {
	sigs, err := c.Verify(ctx, m)
	if err != nil {
		// Could not read the message: nothing is known, and DMARC must not count it as a DKIM failure.
		c.opts.Logger.Warn("dkim: verify", "queue_id", t.QueueID, "err", err)
		t.AddResult(&authres.DKIMResult{Value: authres.ResultTempError, Reason: "message unreadable"})
		t.Values[Name] = []Signature{{Value: authres.ResultTempError, Reason: err.Error()}}
		return filter.Verdict{Reason: "dkim: " + err.Error()}
	}
	t.Values[Name] = sigs
	if len(sigs) == 0 {
		t.AddResult(&authres.DKIMResult{Value: authres.ResultNone})
		return filter.Verdict{}
	}
	failed := []string{}
	for _, s := range sigs {
		t.AddResult(s.result())
		if s.Value != authres.ResultPass {
			failed = append(failed, fmt.Sprintf("%s/%s=%s (%s)", s.Domain, s.Selector, s.Value, s.Detail))
		}
	}
	if len(failed) == 0 {
		return filter.Verdict{}
	}
	v := filter.Verdict{Reason: "dkim: " + strings.Join(failed, ", ")}
	if c.opts.FailScore > 0 {
		v.Action, v.Score, v.Symbol = filter.Tag, c.opts.FailScore, "DKIM_FAIL"
	}
	return v
}

// result renders s for Authentication-Results.
func (s Signature) result() authres.Result {
	return &authres.GenericResult{Method: "dkim", Value: s.Value, Params: map[string]string{
		"reason": s.Reason, "header.d": s.Domain, "header.i": s.Identifier, "header.s": s.Selector,
		"header.a": s.Algorithm, "header.b": s.B,
	}}
}

// Verify checks every signature of m (up to MaxSignatures) and returns one Signature each, in header order.
func (c *Check) Verify(ctx context.Context, m *filter.Message) ([]Signature, error) {
	tags := signatureTags(m.Header, c.opts.MaxSignatures)
	if len(tags) == 0 {
		return nil, nil
	}
	r, err := m.Open()
	if err != nil {
		return nil, fmt.Errorf("open message: %w", err)
	}
	defer r.Close()
	vs, err := msgdkim.VerifyWithOptions(r, &msgdkim.VerifyOptions{
		LookupTXT:        LookupTXT(ctx, c.opts.Resolver),
		MaxVerifications: c.opts.MaxSignatures,
	})
	if err != nil && !errors.Is(err, msgdkim.ErrTooManySignatures) {
		return nil, err
	}
	out := make([]Signature, 0, len(vs))
	for i, v := range vs {
		s := Signature{Value: authres.ResultPass, Domain: strings.ToLower(v.Domain), Identifier: v.Identifier}
		if i < len(tags) {
			s.Selector, s.Algorithm, s.B = tags[i]["s"], tags[i]["a"], bPrefix(tags[i]["b"])
			if s.Domain == "" {
				s.Domain = strings.ToLower(tags[i]["d"])
			}
		}
		if v.Err != nil {
			// The first clause names the failure ("no key for signature", "body hash did not verify"); what
			// follows (resolver errors) is for the log, not for every reader of the header.
			reason, _, _ := strings.Cut(strings.TrimPrefix(v.Err.Error(), "dkim: "), ":")
			s.Value, s.Reason, s.Detail = classify(v.Err), reason, v.Err.Error()
		}
		out = append(out, s)
	}
	return out, nil
}

// classify maps a verification error onto RFC 8601 2.7.1: temperror for a key that could not be fetched now,
// permerror for a signature that cannot be checked (syntax, no key, revoked key, weak algorithm), fail for one
// that was checked and does not match.
func classify(err error) authres.ResultValue {
	switch {
	case msgdkim.IsTempFail(err):
		return authres.ResultTempError
	case msgdkim.IsPermFail(err):
		return authres.ResultPermError
	}
	return authres.ResultFail
}

// bPrefix returns the first 8 characters of b= without folding whitespace (RFC 6008 2: enough to be unique among
// a message's signatures).
func bPrefix(b string) string {
	b = strings.Join(strings.Fields(b), "")
	if len(b) > 8 {
		b = b[:8]
	}
	return b
}

// signatureTags parses the tag lists of the first max DKIM-Signature fields, top to bottom — the order
// go-msgauth verifies them in.
func signatureTags(h textproto.Header, max int) []map[string]string {
	var out []map[string]string
	fs := h.FieldsByKey("DKIM-Signature")
	for fs.Next() && len(out) < max {
		raw, err := fs.Raw()
		v := fs.Value()
		if err == nil {
			if _, after, ok := strings.Cut(string(raw), ":"); ok {
				v = after
			}
		}
		out = append(out, ParseTags(v))
	}
	return out
}

// ParseTags parses a DKIM tag=value list (RFC 6376 3.2), dropping folding whitespace around tags and values.
// Malformed pairs are skipped: this is for display, the verifier does the strict parse.
func ParseTags(s string) map[string]string {
	out := map[string]string{}
	for _, p := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if _, dup := out[k]; k == "" || dup {
			continue
		}
		out[k] = strings.Join(strings.Fields(v), " ")
	}
	return out
}

// LookupTXT adapts r to go-msgauth's TXT lookup, which tells a temporary failure (temperror) from a missing key
// (permerror) by net.Error's Temporary().
func LookupTXT(ctx context.Context, r dns.Resolver) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		txt, _, err := r.LookupTXT(ctx, name)
		switch {
		case err == nil:
			return txt, nil
		case dns.IsTemporary(err), ctx.Err() != nil:
			return nil, &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
		}
		return nil, &net.DNSError{Err: err.Error(), Name: name, IsNotFound: true}
	}
}
