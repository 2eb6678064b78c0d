package store

import "context"

// This file declares the storage of the per-user statistical spam filter (internal/filter/bayes). A backend
// that has it implements BayesStore besides Store; the composition root finds it with a type assertion, so
// backends without it still build.

// BayesCount is how many trained spam and ham messages of one user contained a token.
type BayesCount struct {
	Spam, Ham int64
}

// BayesLearnRequest trains one message of one user, or forgets it.
type BayesLearnRequest struct {
	UserID int64
	// Key identifies the message's content (a hash of its bytes): a message is trained at most once, in one
	// class. Learning a key already trained in the other class moves it (its counts are taken out of that class
	// first); learning it again in the same class changes nothing.
	Key string
	// Spam is the class to learn.
	Spam bool
	// Forget takes the message out of whichever class it was trained in (and changes nothing when it never
	// was); Spam is ignored.
	Forget bool
	// Tokens are the distinct token hashes of the message. They must be the same each time a key is given, since
	// forgetting subtracts them.
	Tokens []int64
}

// BayesStore keeps the statistical filter's per-user counts. Every mutation is durable when it returns.
type BayesStore interface {
	// BayesTotals returns how many spam and ham messages the user has trained.
	BayesTotals(ctx context.Context, userID int64) (BayesCount, error)
	// BayesTokens returns the counts of the given tokens; tokens never seen are absent from the map.
	BayesTokens(ctx context.Context, userID int64, tokens []int64) (map[int64]BayesCount, error)
	// BayesLearn applies req in one transaction and reports whether it changed anything.
	BayesLearn(ctx context.Context, req BayesLearnRequest) (changed bool, err error)
}
