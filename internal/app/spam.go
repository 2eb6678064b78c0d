package app

import (
	"fmt"
	"log/slog"

	"github.com/postern/postern/internal/filter/bayes"
	"github.com/postern/postern/internal/store"
)

// NewBayes returns the per-user statistical spam filter over st's token counts (st must implement
// store.BayesStore, as the SQLite store does). o.Store is filled in; the zero Options give the defaults
// (20 spam and 20 ham before it judges, spam at probability 0.9). Delivery uses it as a filter.UserClassifier,
// `postern spam train` to learn.
func NewBayes(st store.Store, o bayes.Options) (*bayes.Classifier, error) {
	bs, ok := st.(store.BayesStore)
	if !ok {
		return nil, fmt.Errorf("the %T store has no statistical spam filter tables", st)
	}
	o.Store = bs
	return bayes.New(o)
}

// NewJunkTrainer returns imapserver's JunkTrainer hook: moves into and out of Junk, and the $Junk / $NotJunk
// keywords, teach c (imapserver.Options.JunkTrainer).
func NewJunkTrainer(st store.Store, c *bayes.Classifier, log *slog.Logger) *bayes.Trainer {
	return bayes.NewTrainer(c, st.Blobs(), 0, log)
}
