package imapserver

import (
	"context"
	"strings"

	"github.com/postern/postern/internal/store"
)

// JunkTrainer learns from what users tell their mail client about spam: the per-user statistical filter
// (implemented by the bayes filter). It is optional.
//
// TrainJunk is called, in its own goroutine, after messages were moved or copied into the \Junk mailbox
// (spam=true); moved out of \Junk into a mailbox other than \Trash (spam=false); or had the keywords $Junk / Junk
// (spam) or $NotJunk / NotJunk / NonJunk (not spam) set with STORE — the keywords Thunderbird, Apple Mail and
// K-9 use. Each message is named by its blob ID, which all copies of one message share, so the trainer can count a
// message once per class and untrain it when the user changes their mind.
type JunkTrainer interface {
	TrainJunk(ctx context.Context, userID int64, blobIDs []string, spam bool)
}

// junkKeyword classifies a keyword set with STORE: +1 spam, -1 not spam, 0 neither.
func junkKeyword(flag string) int {
	switch strings.ToLower(flag) {
	case "$junk", "junk":
		return 1
	case "$notjunk", "notjunk", "nonjunk":
		return -1
	}
	return 0
}

// noTraining is the training of a command that teaches nothing.
func noTraining() {}

// trainCopy prepares telling the trainer about a COPY or MOVE from src to dst of the messages with source UIDs
// uids; the caller runs the returned func once the copy succeeded.
func (c *session) trainCopy(src, dst store.Mailbox, uids []uint32, move bool) func() {
	if c.opts().JunkTrainer == nil || len(uids) == 0 {
		return noTraining
	}
	var spam bool
	switch {
	case dst.SpecialUse == `\Junk` && src.SpecialUse != `\Junk`:
		spam = true
	case move && src.SpecialUse == `\Junk` && dst.SpecialUse != `\Junk` && dst.SpecialUse != `\Trash`:
		spam = false
	default:
		return noTraining
	}
	return c.train(src.ID, uids, spam)
}

// trainStore prepares telling the trainer about junk keywords added by STORE (FLAGS replace or +FLAGS).
func (c *session) trainStore(mailboxID int64, op store.FlagOp, flags []string, uids []uint32) func() {
	if c.opts().JunkTrainer == nil || op == store.FlagsRemove || len(uids) == 0 {
		return noTraining
	}
	verdict := 0
	for _, f := range flags {
		if k := junkKeyword(f); k != 0 {
			verdict = k
		}
	}
	if verdict == 0 {
		return noTraining
	}
	return c.train(mailboxID, uids, verdict > 0)
}

// train looks up the blobs of uids in mailboxID; the returned func hands them to the trainer without blocking
// the session.
func (c *session) train(mailboxID int64, uids []uint32, spam bool) func() {
	msgs, err := c.opts().Store.Messages(c.ctx, store.MessageQuery{MailboxID: mailboxID, UIDs: uidSetOf(uids)})
	if err != nil {
		c.log.Warn("junk training: list messages", "err", err)
		return noTraining
	}
	blobs := make([]string, 0, len(msgs))
	for _, m := range msgs {
		blobs = append(blobs, m.BlobID)
	}
	if len(blobs) == 0 {
		return noTraining
	}
	userID, tr, ctx := c.user.ID, c.opts().JunkTrainer, context.WithoutCancel(c.ctx)
	return func() { go tr.TrainJunk(ctx, userID, blobs, spam) }
}
