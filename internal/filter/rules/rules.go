// Package rules is the built-in spam scoring at DATA: a table of named rules, each with a score, in the spirit of
// SpamAssassin's — GTUBE, header checks (missing or invalid Date and Message-ID, malformed or spoofed From,
// all-capitals subject, 8-bit garbage, many recipients), MIME checks (HTML only, image only, unknown charsets),
// link checks (IP-literal hosts, shorteners, user@host tricks, link text showing another site), weighted phrase
// groups, and the authentication results of the spf, dkim and dmarc checks when those did not score them.
//
// Every rule that hits adds its score under its symbol (e.g. "MISSING_DATE=1.0" in X-Spam-Status). GTUBE scores
// 1000, so with any reject_score it is refused at DATA. Scores can be changed or rules turned off (score 0) with
// Options.Scores. docs/filters-rules.md lists the rules and how they do on SpamAssassin's sample ham and spam.
//
// Authentication results: the spf check scores its own results (symbols SPF_*), dkim and dmarc may (DKIM_*,
// DMARC_*); the AUTH_* rules here fire only for a method with a result in Txn.Results and no symbol of that
// method's prefix in Txn.Symbols, so nothing is counted twice. Pipeline order: the authentication checks first,
// rules after them.
//
// Config keys (wired by internal/app): [antispam] rules = true (on by default on the MX listener),
// rule_scores = { SYMBOL = score, ... } (Options.Scores).
package rules

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/postern/postern/internal/filter"
)

// Name is the check's name.
const Name = "rules"

// DefaultMaxBytes is how much of a message the rules read by default (SpamAssassin's spamc reads 500 KB).
const DefaultMaxBytes = 512 << 10

// Options configure the rules.
type Options struct {
	// Scores overrides the score of rules by symbol; 0 turns a rule off. An unknown symbol is an error.
	Scores map[string]float64
	// MaxBytes is how much of the message is read (default DefaultMaxBytes).
	MaxBytes int64
	// Now is the time of reception (default time.Now), for the Date rules.
	Now    func() time.Time
	Logger *slog.Logger
}

// Check is the rules check. It is safe for concurrent use.
type Check struct {
	rules    []rule
	phrases  map[string][]phrase
	maxBytes int64
	now      func() time.Time
	log      *slog.Logger
}

var _ filter.DataChecker = (*Check)(nil)

// New returns the rules check with o's scores applied.
func New(o Options) (*Check, error) {
	c := &Check{rules: builtin(), phrases: phraseGroups(), maxBytes: o.MaxBytes, now: o.Now, log: o.Logger}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxBytes
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	for sym, score := range o.Scores {
		i := c.index(sym)
		if i < 0 {
			return nil, fmt.Errorf("rules: no rule %q", sym)
		}
		c.rules[i].score = score
	}
	return c, nil
}

func (c *Check) index(symbol string) int {
	for i, r := range c.rules {
		if strings.EqualFold(r.symbol, symbol) {
			return i
		}
	}
	return -1
}

// Name is the check's name in logs.
func (c *Check) Name() string { return Name }

// Rule describes one rule, for documentation and admin output.
type Rule struct {
	Symbol      string
	Score       float64
	Description string
}

// Rules lists the rules with their effective scores, in table order.
func (c *Check) Rules() []Rule {
	out := make([]Rule, len(c.rules))
	for i, r := range c.rules {
		out[i] = Rule{r.symbol, r.score, r.desc}
	}
	return out
}

// Hit is one rule that matched.
type Hit struct {
	Symbol string
	Score  float64
}

// Data scores the message. Each hit is added to the transaction under its own symbol (Txn.AddScore), so
// X-Spam-Status names every rule; the verdict itself carries only the log reason.
func (c *Check) Data(ctx context.Context, t *filter.Txn, m *filter.Message) filter.Verdict {
	hits, err := c.Score(ctx, t, m)
	if err != nil {
		c.log.Warn("rules: read message", "queue_id", t.QueueID, "err", err)
		return filter.Verdict{}
	}
	if len(hits) == 0 {
		return filter.Verdict{}
	}
	var sum float64
	names := make([]string, len(hits))
	for i, h := range hits {
		t.AddScore(h.Symbol, h.Score)
		sum += h.Score
		names[i] = h.Symbol
	}
	return filter.Verdict{Action: filter.Tag, Reason: fmt.Sprintf("rules %.1f: %s", sum, strings.Join(names, ","))}
}

// Score returns the rules that match m (t may be nil: no authentication results).
func (c *Check) Score(ctx context.Context, t *filter.Txn, m *filter.Message) ([]Hit, error) {
	rc, err := m.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, c.maxBytes))
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	hdr := m.Header
	if hdr.Len() == 0 {
		hdr = parseHeader(raw)
	}
	f := newFacts(t, c.now(), hdr, raw)
	f.phraseTab = c.phrases
	var hits []Hit
	for _, r := range c.rules {
		if r.score != 0 && r.test(f) {
			hits = append(hits, Hit{r.symbol, r.score})
		}
	}
	return hits, nil
}

// parseHeader reads the header block of raw; a message without one has an empty header.
func parseHeader(raw []byte) textproto.Header {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return textproto.Header{}
	}
	return h
}
