// Package bayes is the per-user statistical spam filter: each user teaches it what they call spam and ham (by
// moving mail into and out of Junk over IMAP, or with `postern spam train`), and delivery asks it about every
// message before filing that user's copy.
//
// It is a Robinson–Fisher classifier like SpamBayes, bogofilter and SpamAssassin's Bayes: a message is a set of
// tokens (see Tokenize); each token's spam probability comes from how many trained spam and ham messages held it,
// shrunk towards 0.5 when the token is rare (Robinson's f(w)); the most telling tokens are combined with Fisher's
// chi-square method into a probability that the message is spam. Counts live in the store (store.BayesStore),
// per user, keyed by a 64-bit hash of each token.
//
// It does not judge until the user has trained MinSpam spam and MinHam ham messages: with fewer, every token is
// rare and the answer would be noise.
//
// Config keys (wired by internal/app): [antispam] bayes (on/off), bayes_threshold (Options.Threshold),
// bayes_min_spam and bayes_min_ham (Options.MinSpam, Options.MinHam).
package bayes

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/store"
)

// Defaults of Options.
const (
	DefaultMinTrained = 20
	DefaultThreshold  = 0.9
	DefaultMaxBytes   = 512 << 10
)

// Robinson's constants: a token seen n times gets (s*x + n*p) / (s + n); x is the probability of a token never
// seen, s how strongly it is believed. Only tokens whose probability is at least minDev away from 0.5 are
// combined, at most maxClues of them (SpamBayes' defaults, apart from s: 0.45 suits small training sets).
const (
	robS     = 0.45
	robX     = 0.5
	minDev   = 0.1
	maxClues = 150
)

// Options configure a Classifier.
type Options struct {
	Store store.BayesStore
	// MinSpam and MinHam are the trained messages of each class a user needs before Classify judges
	// (default DefaultMinTrained).
	MinSpam, MinHam int
	// Threshold is the probability at or above which a message is spam (default DefaultThreshold).
	Threshold float64
	// MaxBytes is how much of a message is read (default DefaultMaxBytes); the rest is ignored, as
	// SpamAssassin does, so a large attachment costs nothing.
	MaxBytes int64
	Logger   *slog.Logger
}

// Classifier trains and applies each user's model. It is safe for concurrent use.
type Classifier struct {
	o Options
}

var _ filter.UserClassifier = (*Classifier)(nil)

// New returns a Classifier over o.Store.
func New(o Options) (*Classifier, error) {
	if o.Store == nil {
		return nil, errors.New("bayes: no store")
	}
	if o.MinSpam <= 0 {
		o.MinSpam = DefaultMinTrained
	}
	if o.MinHam <= 0 {
		o.MinHam = DefaultMinTrained
	}
	if o.Threshold <= 0 || o.Threshold > 1 {
		o.Threshold = DefaultThreshold
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Classifier{o: o}, nil
}

// Name is the check's name in logs.
func (c *Classifier) Name() string { return "bayes" }

// sample is what the classifier uses of one message: its content key and token hashes.
type sample struct {
	key    string
	tokens []int64
}

// read takes up to MaxBytes of r and tokenizes them. The key hashes the same bytes, so a message is recognised
// whenever the same bytes are trained again, and forgetting it subtracts exactly what learning added (the
// tokens do not depend on line endings either).
func (c *Classifier) read(r io.Reader) (sample, error) {
	msg, err := io.ReadAll(io.LimitReader(r, c.o.MaxBytes))
	if err != nil {
		return sample{}, fmt.Errorf("bayes: read message: %w", err)
	}
	// The key ignores CR, so a message keeps its key between the store (CRLF) and an mbox file (LF).
	sum := sha256.Sum256(bytes.ReplaceAll(msg, []byte("\r"), nil))
	toks := Tokenize(msg)
	s := sample{key: hex.EncodeToString(sum[:16]), tokens: make([]int64, 0, len(toks))}
	seen := make(map[int64]bool, len(toks))
	for _, t := range toks {
		if h := hashToken(t); !seen[h] {
			seen[h] = true
			s.tokens = append(s.tokens, h)
		}
	}
	return s, nil
}

// Train learns the message r as spam or ham for the user. A message already learned in that class is not
// counted again (changed is false); one learned in the other class is moved.
func (c *Classifier) Train(ctx context.Context, userID int64, spam bool, r io.Reader) (changed bool, err error) {
	s, err := c.read(r)
	if err != nil {
		return false, err
	}
	changed, err = c.o.Store.BayesLearn(ctx, store.BayesLearnRequest{UserID: userID, Key: s.key, Spam: spam, Tokens: s.tokens})
	if err != nil {
		return false, fmt.Errorf("bayes: train: %w", err)
	}
	return changed, nil
}

// Untrain forgets the message r for the user, whichever class it was learned in (changed is false when it never
// was).
func (c *Classifier) Untrain(ctx context.Context, userID int64, r io.Reader) (changed bool, err error) {
	s, err := c.read(r)
	if err != nil {
		return false, err
	}
	changed, err = c.o.Store.BayesLearn(ctx, store.BayesLearnRequest{UserID: userID, Key: s.key, Forget: true, Tokens: s.tokens})
	if err != nil {
		return false, fmt.Errorf("bayes: untrain: %w", err)
	}
	return changed, nil
}

// Totals returns how many spam and ham messages the user has trained.
func (c *Classifier) Totals(ctx context.Context, userID int64) (store.BayesCount, error) {
	return c.o.Store.BayesTotals(ctx, userID)
}

// Ready reports whether the user has trained enough to be judged.
func (c *Classifier) Ready(tot store.BayesCount) bool {
	return tot.Spam >= int64(c.o.MinSpam) && tot.Ham >= int64(c.o.MinHam)
}

// Classify judges m for the user (filter.UserClassifier). Until the user has trained enough it answers not spam
// with probability 0.5.
// The message is tokenized once however many users it is classified for (filter.Message.Memo).
func (c *Classifier) Classify(ctx context.Context, userID int64, m *filter.Message) (spam bool, probability float64, err error) {
	p, err := c.probability(ctx, userID, func() (sample, error) {
		v, err := m.Memo("bayes.sample", func() (any, error) {
			rc, err := m.Open()
			if err != nil {
				return nil, fmt.Errorf("bayes: open message: %w", err)
			}
			defer rc.Close()
			return c.read(rc)
		})
		if err != nil {
			return sample{}, err
		}
		return v.(sample), nil
	})
	if err != nil {
		return false, 0.5, err
	}
	return p >= c.o.Threshold, p, nil
}

// Probability returns the probability that the message r is spam for the user: 0.5 when the user has not trained
// enough or nothing in the message is telling.
func (c *Classifier) Probability(ctx context.Context, userID int64, r io.Reader) (float64, error) {
	return c.probability(ctx, userID, func() (sample, error) { return c.read(r) })
}

// probability is Probability with the message's sample read only once the user is known to be trained enough.
func (c *Classifier) probability(ctx context.Context, userID int64, sampleOf func() (sample, error)) (float64, error) {
	tot, err := c.o.Store.BayesTotals(ctx, userID)
	if err != nil {
		return 0.5, fmt.Errorf("bayes: %w", err)
	}
	if !c.Ready(tot) {
		return 0.5, nil
	}
	s, err := sampleOf()
	if err != nil {
		return 0.5, err
	}
	counts, err := c.o.Store.BayesTokens(ctx, userID, s.tokens)
	if err != nil {
		return 0.5, fmt.Errorf("bayes: %w", err)
	}
	return combine(clues(counts, tot)), nil
}

// clues returns the Robinson probabilities of the most telling tokens.
func clues(counts map[int64]store.BayesCount, tot store.BayesCount) []float64 {
	ps := make([]float64, 0, len(counts))
	for _, c := range counts {
		p := tokenProb(c, tot)
		if math.Abs(p-0.5) >= minDev {
			ps = append(ps, p)
		}
	}
	if len(ps) > maxClues {
		slices.SortFunc(ps, func(a, b float64) int { return cmp.Compare(math.Abs(b-0.5), math.Abs(a-0.5)) })
		ps = ps[:maxClues]
	}
	return ps
}

// tokenProb is Robinson's f(w): the Graham probability from the ratios of spam and ham messages that held the
// token, shrunk towards robX by how rarely it was seen.
func tokenProb(c store.BayesCount, tot store.BayesCount) float64 {
	sr := float64(c.Spam) / float64(max(tot.Spam, 1))
	hr := float64(c.Ham) / float64(max(tot.Ham, 1))
	if sr+hr == 0 {
		return robX
	}
	p := sr / (sr + hr)
	n := float64(c.Spam + c.Ham)
	return (robS*robX + n*p) / (robS + n)
}

// combine is Fisher's method as SpamBayes uses it: H and S are the chi-square probabilities of the ham and spam
// evidence; the result (1 + H - S) / 2 is near 1 for spam, near 0 for ham, near 0.5 when unsure.
func combine(ps []float64) float64 {
	if len(ps) == 0 {
		return 0.5
	}
	var lnS, lnH float64
	for _, p := range ps {
		p = min(max(p, 1e-6), 1-1e-6)
		lnS += math.Log(1 - p)
		lnH += math.Log(p)
	}
	n := len(ps)
	s := 1 - chi2Q(-2*lnS, 2*n) // near 1 when the tokens are spammy
	h := 1 - chi2Q(-2*lnH, 2*n) // near 1 when the tokens are hammy
	return (1 + s - h) / 2
}

// chi2Q is the survival function of the chi-square distribution with v (even) degrees of freedom at x, computed
// in log space so that hundreds of clues do not underflow: Q = exp(-m) * sum_{i<v/2} m^i / i!, m = x/2.
func chi2Q(x float64, v int) float64 {
	m := x / 2
	if m <= 0 {
		return 1
	}
	lnM := math.Log(m)
	terms := make([]float64, v/2)
	hi := math.Inf(-1)
	for i := range terms {
		lg, _ := math.Lgamma(float64(i + 1))
		terms[i] = -m + float64(i)*lnM - lg
		hi = max(hi, terms[i])
	}
	var sum float64
	for _, t := range terms {
		sum += math.Exp(t - hi)
	}
	return min(math.Exp(hi)*sum, 1)
}
