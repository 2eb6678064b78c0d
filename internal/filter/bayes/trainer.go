package bayes

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/postern/postern/internal/store"
)

// Trainer teaches the classifier from what users do over IMAP: it implements imapserver.JunkTrainer (moves into
// Junk and the $Junk keyword train spam; moves out of Junk, not to Trash, and $NotJunk train ham). A message is
// known by the hash of its content, which every copy shares, so it is counted once per class however often it is
// moved, and moving it back moves its counts to the other class (Classifier.Train).
type Trainer struct {
	c     *Classifier
	blobs store.BlobStore
	log   *slog.Logger
	// sem bounds how many training runs go at once: a user moving thousands of messages must not starve
	// deliveries of the store's writer.
	sem chan struct{}
}

// NewTrainer returns a Trainer that reads messages from blobs. concurrency bounds the simultaneous training runs
// (default 2).
func NewTrainer(c *Classifier, blobs store.BlobStore, concurrency int, log *slog.Logger) *Trainer {
	if concurrency <= 0 {
		concurrency = 2
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Trainer{c: c, blobs: blobs, log: log, sem: make(chan struct{}, concurrency)}
}

// TrainJunk learns the messages stored as blobIDs as spam or ham for the user. The IMAP server calls it in its
// own goroutine after the command succeeded; failures are logged, never reported to the client (the user's move
// stands either way).
func (t *Trainer) TrainJunk(ctx context.Context, userID int64, blobIDs []string, spam bool) {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-t.sem }()
	defer func() {
		if r := recover(); r != nil {
			t.log.Error("bayes training panicked", "user", userID, "panic", r)
		}
	}()
	var learned int
	for _, id := range blobIDs {
		changed, err := t.trainBlob(ctx, userID, id, spam)
		if err != nil {
			t.log.Warn("bayes training", "user", userID, "blob", id, "spam", spam, "err", err)
			if ctx.Err() != nil {
				return
			}
			continue
		}
		if changed {
			learned++
		}
	}
	t.log.Info("bayes trained from IMAP", "user", userID, "spam", spam, "messages", len(blobIDs), "learned", learned)
}

func (t *Trainer) trainBlob(ctx context.Context, userID int64, blobID string, spam bool) (bool, error) {
	r, err := t.blobs.Open(ctx, blobID)
	if err != nil {
		return false, fmt.Errorf("open blob: %w", err)
	}
	defer r.Close()
	return t.c.Train(ctx, userID, spam, r)
}
