// Package arc validates the Authenticated Received Chain of a received message (RFC 8617) at the DATA stage: the
// ARC sets (ARC-Authentication-Results, ARC-Message-Signature, ARC-Seal) that forwarders such as mailing lists add
// to vouch for the authentication results they saw before they changed the message.
//
// The result is recorded as an Authentication-Results "arc" result (none, pass, fail — RFC 8617 4.4; temperror when
// a key could not be fetched) and kept in Txn.Values["arc"] as a *Result, so a later check (DMARC, scoring) may
// trust a chain sealed by a known forwarder. The check itself never rejects: ARC only informs local policy.
//
// Validation follows RFC 8617 5.2: the chain's structure (instances 1..N, one of each header per instance, N <= 50,
// cv=none at i=1 and cv=pass above, no cv=fail), the newest ARC-Message-Signature, then every ARC-Seal from newest to
// oldest. Signatures are checked with this package's own DKIM-style canonicalization and key lookup through our
// dns.Resolver (RSA >= 1024 bits, or Ed25519).
//
// Seal adds this server's own ARC set to a message it forwards (RFC 8617 5.1), e.g. for aliases that point to
// remote addresses; whoever forwards (delivery/outbound) calls it with a key from internal/dkim.
//
// Pipeline order: spf, dkim, arc, dmarc. Config key (H6 wires it): [antispam] arc = true.
package arc

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"

	"github.com/emersion/go-msgauth/authres"

	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/filter"
)

// Name is the check's name and its key in Txn.Values.
const Name = "arc"

// maxInstances is the largest instance number allowed (RFC 8617 4.2.1).
const maxInstances = 50

// Options configure the check.
type Options struct {
	// Resolver looks up the sealers' keys; required.
	Resolver dns.Resolver
	Logger   *slog.Logger
}

// Result is the outcome of chain validation.
type Result struct {
	Value     authres.ResultValue // none, pass, fail, temperror
	Instances int                 // N, the number of ARC sets
	Sealers   []string            // d= of each ARC-Seal, oldest first (only on pass)
	Reason    string
}

// Check is the ARC validator.
type Check struct {
	opts Options
}

var _ filter.DataChecker = (*Check)(nil)

// New returns the check.
func New(o Options) (*Check, error) {
	if o.Resolver == nil {
		return nil, fmt.Errorf("arc: no resolver")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Check{opts: o}, nil
}

// Name implements filter.Check.
func (c *Check) Name() string { return Name }

// Data validates the chain and records the result.
func (c *Check) Data(ctx context.Context, t *filter.Txn, m *filter.Message) filter.Verdict {
	r := c.Validate(ctx, m)
	t.Values[Name] = &r
	params := map[string]string{"reason": r.Reason}
	if t.Conn != nil && t.Conn.IP.IsValid() {
		params["smtp.remote-ip"] = t.Conn.IP.String()
	}
	// authres.Format does not know ARCResult, so the generic form carries it.
	t.AddResult(&authres.GenericResult{Method: "arc", Value: r.Value, Params: params})
	if r.Value == authres.ResultFail || r.Value == authres.ResultTempError {
		return filter.Verdict{Reason: "arc=" + string(r.Value) + " (" + r.Reason + ")"}
	}
	return filter.Verdict{}
}

// Validate runs RFC 8617 5.2 on m.
func (c *Check) Validate(ctx context.Context, m *filter.Message) Result {
	if !m.Header.Has("ARC-Seal") && !m.Header.Has("ARC-Message-Signature") && !m.Header.Has("ARC-Authentication-Results") {
		return Result{Value: authres.ResultNone}
	}
	rc, err := m.Open()
	if err != nil {
		return Result{Value: authres.ResultTempError, Reason: "message unreadable"}
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	fields, err := readHeader(br)
	if err != nil {
		return Result{Value: authres.ResultFail, Reason: err.Error()}
	}
	r, err := c.validate(ctx, fields, br)
	if err != nil {
		r.Value, r.Reason, r.Sealers = authres.ResultFail, err.Error(), nil
		if errors.Is(err, errTemp) {
			r.Value = authres.ResultTempError
		}
	}
	return r
}

// set is one ARC set: the three header fields of instance i.
type set struct {
	aar, ams, as *field
	amsTags      map[string]string
	asTags       map[string]string
}

func (c *Check) validate(ctx context.Context, fields []field, body *bufio.Reader) (Result, error) {
	sets, err := collect(fields)
	if err != nil {
		return Result{}, err
	}
	n := len(sets) - 1 // sets[0] is unused; instances are 1..n
	r := Result{Instances: n}
	// 5.2 step 2: the newest seal's cv. A chain already failed stays failed.
	for i := 1; i <= n; i++ {
		cv := sets[i].asTags["cv"]
		switch {
		case cv == "fail":
			return r, fmt.Errorf("ARC-Seal i=%d has cv=fail", i)
		case i == 1 && cv != "none", i > 1 && cv != "pass":
			return r, fmt.Errorf("ARC-Seal i=%d has cv=%s", i, cv)
		}
	}
	// Step 3: the newest ARC-Message-Signature.
	if err := c.verifyAMS(ctx, fields, sets[n], body); err != nil {
		return r, fmt.Errorf("ARC-Message-Signature i=%d: %w", n, err)
	}
	// Steps 5-6: every seal, newest first.
	for i := n; i >= 1; i-- {
		if err := c.verifyAS(ctx, sets, i); err != nil {
			return r, fmt.Errorf("ARC-Seal i=%d: %w", i, err)
		}
	}
	for i := 1; i <= n; i++ {
		r.Sealers = append(r.Sealers, sets[i].asTags["d"])
	}
	r.Value = authres.ResultPass
	return r, nil
}

// collect groups the ARC header fields by instance and checks the structure (RFC 8617 4.1, 5.1.2).
func collect(fields []field) ([]set, error) {
	byI := map[int]*set{}
	maxI := 0
	for k := range fields {
		f := &fields[k]
		var i int
		var err error
		var tags map[string]string
		switch strings.ToLower(f.Name) {
		case "arc-authentication-results":
			i, err = aarInstance(f.value())
		case "arc-message-signature", "arc-seal":
			if tags, err = parseTags(f.value()); err == nil {
				i, err = instance(tags["i"])
			}
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		s := byI[i]
		if s == nil {
			s = &set{}
			byI[i] = s
		}
		var dup bool
		switch strings.ToLower(f.Name) {
		case "arc-authentication-results":
			dup, s.aar = s.aar != nil, f
		case "arc-message-signature":
			dup, s.ams, s.amsTags = s.ams != nil, f, tags
		default:
			dup, s.as, s.asTags = s.as != nil, f, tags
		}
		if dup {
			return nil, fmt.Errorf("two %s with i=%d", f.Name, i)
		}
		maxI = max(maxI, i)
	}
	sets := make([]set, maxI+1)
	for i := 1; i <= maxI; i++ {
		s := byI[i]
		if s == nil || s.aar == nil || s.ams == nil || s.as == nil {
			return nil, fmt.Errorf("ARC set i=%d incomplete", i)
		}
		sets[i] = *s
	}
	return sets, nil
}

// instance parses an i= value: 1..50 (RFC 8617 4.2.1).
func instance(v string) (int, error) {
	i, err := strconv.Atoi(v)
	if err != nil || i < 1 || i > maxInstances || strconv.Itoa(i) != v {
		return 0, fmt.Errorf("bad instance %q", v)
	}
	return i, nil
}

// aarInstance reads the "i=N;" that must open an ARC-Authentication-Results value (RFC 8617 4.1.1).
func aarInstance(v string) (int, error) {
	m := aarI.FindStringSubmatch(v)
	if m == nil {
		return 0, fmt.Errorf("no leading i= tag")
	}
	return instance(m[1])
}

var aarI = regexp.MustCompile(`^[ \t\r\n]*i[ \t\r\n]*=[ \t\r\n]*([0-9]+)[ \t\r\n]*;`)

// checkCommon checks the tags both signatures share: a=, b=, d=, s=, t= (RFC 8617 4.1.2, 4.1.3).
func checkCommon(tags map[string]string) (sig []byte, err error) {
	if a := tags["a"]; a != "rsa-sha256" && a != "ed25519-sha256" {
		return nil, fmt.Errorf("algorithm %q", a) // rsa-sha1 is not allowed (RFC 8301)
	}
	sig, err = base64.StdEncoding.DecodeString(stripFWS(tags["b"]))
	if err != nil || len(sig) == 0 {
		return nil, fmt.Errorf("bad b=")
	}
	if !validDomain(tags["d"]) {
		return nil, fmt.Errorf("bad d=%q", tags["d"])
	}
	if tags["s"] == "" {
		return nil, fmt.Errorf("no s=")
	}
	if t, ok := tags["t"]; ok {
		if _, err := strconv.ParseUint(t, 10, 64); err != nil {
			return nil, fmt.Errorf("bad t=%q", t)
		}
	}
	return sig, nil
}

var ldhLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(d, "."), ".") {
		if !ldhLabel.MatchString(l) {
			return false
		}
	}
	return true
}

// verifyAMS checks the ARC-Message-Signature of set s: a DKIM signature (RFC 6376 3.7) whose i= is the instance
// (RFC 8617 4.1.2). The AMS itself and ARC-Seal fields never take part in its header hash.
func (c *Check) verifyAMS(ctx context.Context, fields []field, s set, body *bufio.Reader) error {
	tags := s.amsTags
	sig, err := checkCommon(tags)
	if err != nil {
		return err
	}
	for _, k := range []string{"bh", "h"} {
		if _, ok := tags[k]; !ok {
			return fmt.Errorf("no %s=", k)
		}
	}
	relaxedH, relaxedB, err := canonicalization(tags)
	if err != nil {
		return err
	}
	wantBH, err := base64.StdEncoding.DecodeString(stripFWS(tags["bh"]))
	if err != nil || len(wantBH) == 0 {
		return fmt.Errorf("bad bh=")
	}
	h := sha256.New()
	if err := canonBody(h, body, relaxedB); err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if string(h.Sum(nil)) != string(wantBH) {
		return fmt.Errorf("body hash does not match")
	}
	var names []string
	if hv := stripFWS(tags["h"]); hv != "" {
		names = strings.Split(hv, ":")
	}
	for _, name := range names {
		if strings.EqualFold(name, "arc-seal") {
			return fmt.Errorf("h= lists ARC-Seal") // RFC 8617 4.1.2: MUST NOT
		}
	}
	if err := c.verify(ctx, tags, headerHash(fields, names, s.ams, relaxedH), sig); err == nil || relaxedH || tags["c"] != "" {
		return err
	}
	// No c=: RFC 6376 3.5 says simple/simple, but ARC signers (dkimpy, whose output the ValiMail suite holds)
	// canonicalize the headers relaxed then. Either form proves the sealer signed these headers.
	return c.verify(ctx, tags, headerHash(fields, names, s.ams, true), sig)
}

// headerHash hashes the fields listed in h= (bottom-up for repeated names, RFC 6376 5.4.2; absent ones
// contribute nothing) and then the signature field itself with b= empty and no final CRLF (RFC 6376 3.7).
func headerHash(fields []field, names []string, sigField *field, relaxed bool) []byte {
	h := sha256.New()
	used := map[*field]bool{sigField: true}
	for _, name := range names {
		if f := pick(fields, name, used); f != nil {
			h.Write([]byte(canonHeader(f.Raw, relaxed)))
		}
	}
	h.Write([]byte(strings.TrimSuffix(canonHeader(withoutB(sigField.Raw), relaxed), "\r\n")))
	return h.Sum(nil)
}

// canonicalization reads c= (default simple/simple, RFC 6376 3.5).
func canonicalization(tags map[string]string) (relaxedHeader, relaxedBody bool, err error) {
	c, ok := tags["c"]
	if !ok {
		return false, false, nil
	}
	hc, bc, _ := strings.Cut(c, "/")
	if bc == "" && !strings.Contains(c, "/") {
		bc = "simple"
	}
	ok1, ok2 := hc == "simple" || hc == "relaxed", bc == "simple" || bc == "relaxed"
	if !ok1 || !ok2 {
		return false, false, fmt.Errorf("bad c=%q", c)
	}
	return hc == "relaxed", bc == "relaxed", nil
}

// pick returns the last not yet used field named name: DKIM takes repeated fields from the bottom up (RFC 6376
// 5.4.2).
func pick(fields []field, name string, used map[*field]bool) *field {
	for i := len(fields) - 1; i >= 0; i-- {
		f := &fields[i]
		if !used[f] && strings.EqualFold(f.Name, name) {
			used[f] = true
			return f
		}
	}
	return nil
}

// verifyAS checks the ARC-Seal of instance i: a signature over the sets 1..i in order AAR, AMS, AS, relaxed
// header canonicalization, the seal being checked last with its b= empty (RFC 8617 5.1.1).
func (c *Check) verifyAS(ctx context.Context, sets []set, i int) error {
	tags := sets[i].asTags
	sig, err := checkCommon(tags)
	if err != nil {
		return err
	}
	if _, ok := tags["h"]; ok {
		return fmt.Errorf("h= is not allowed in ARC-Seal") // RFC 8617 4.1.3
	}
	if cv := tags["cv"]; cv != "none" && cv != "pass" && cv != "fail" {
		return fmt.Errorf("bad cv=%q", cv)
	}
	h := sha256.New()
	for j := 1; j <= i; j++ {
		s := sets[j]
		h.Write([]byte(canonHeader(s.aar.Raw, true)))
		h.Write([]byte(canonHeader(s.ams.Raw, true)))
		if j < i {
			h.Write([]byte(canonHeader(s.as.Raw, true)))
		}
	}
	h.Write([]byte(strings.TrimSuffix(canonHeader(withoutB(sets[i].as.Raw), true), "\r\n")))
	return c.verify(ctx, tags, h.Sum(nil), sig)
}

func (c *Check) verify(ctx context.Context, tags map[string]string, hashed, sig []byte) error {
	pub, err := publicKey(ctx, c.opts.Resolver, tags["d"], tags["s"], tags["a"])
	if err != nil {
		return err
	}
	if err := verifySig(pub, hashed, sig); err != nil {
		return fmt.Errorf("signature does not verify")
	}
	return nil
}
