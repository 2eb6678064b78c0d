package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/postern/postern/internal/store"
)

// awaitWake fails when ch gets no wake-up. The long timeout only turns a missing notification into a failure
// instead of a hung test; it asserts nothing about speed.
func awaitWake(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("no wake-up after %s", what)
	}
}

// noWake fails when ch holds a wake-up. Checked right after a wake-up of another mailbox caused by a later change,
// so that a backend delivering notifications in commit order has delivered any wrong one already.
func noWake(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("unexpected wake-up after %s", what)
	default:
	}
}

// testNotifier: subscribers of a mailbox wake after each committed change of it (delivery, append, store,
// expunge, copy), and not after changes of other mailboxes; wake-ups coalesce.
func testNotifier(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	inbox := getMailbox(t, s, u.ID, "INBOX")
	sent := getMailbox(t, s, u.ID, "Sent")
	n := s.Notifier()
	inboxCh, stopInbox := n.Subscribe(inbox.ID)
	inboxCh2, stopInbox2 := n.Subscribe(inbox.ID)
	sentCh, stopSent := n.Subscribe(sent.ID)
	defer stopInbox()
	defer stopSent()

	must(t, s.Deliver(ctx, &store.Delivery{Blob: putBlob(t, s, "Subject: n\r\n\r\nx\r\n"), Local: []store.LocalCopy{{UserID: u.ID}}}))
	awaitWake(t, inboxCh, "delivery to INBOX")
	awaitWake(t, inboxCh2, "delivery to INBOX (second subscriber)")
	stopInbox2()
	stopInbox2() // idempotent

	appendMsg(t, s, sent, "sent")
	awaitWake(t, sentCh, "append to Sent")
	noWake(t, inboxCh, "append to Sent")

	_, err := s.StoreFlags(ctx, store.StoreFlagsRequest{MailboxID: inbox.ID, UIDs: store.AllUIDs, Op: store.FlagsAdd, Flags: []string{`\Deleted`}})
	must(t, err)
	awaitWake(t, inboxCh, "store to INBOX")
	noWake(t, sentCh, "store to INBOX")

	_, err = s.Expunge(ctx, store.ExpungeRequest{MailboxID: inbox.ID, RequireDeleted: true})
	must(t, err)
	awaitWake(t, inboxCh, "expunge of INBOX")

	_, err = s.Copy(ctx, store.CopyRequest{SrcMailboxID: sent.ID, DstMailboxID: inbox.ID, UIDs: store.AllUIDs, Move: true})
	must(t, err)
	awaitWake(t, inboxCh, "move into INBOX")
	awaitWake(t, sentCh, "move out of Sent")

	// Coalescing: two changes while nobody reads leave one pending wake-up, and the writer never blocked.
	appendMsg(t, s, sent, "a")
	appendMsg(t, s, sent, "b")
	awaitWake(t, sentCh, "two appends")
	appendMsg(t, s, inbox, "barrier")
	awaitWake(t, inboxCh, "append to INBOX")
	noWake(t, sentCh, "the coalesced appends")

	// After the subscription ends no wake-up arrives; a new one works.
	stopSent()
	appendMsg(t, s, sent, "c")
	noWake(t, sentCh, "append after unsubscribing")
	sentCh3, stop3 := n.Subscribe(sent.ID)
	defer stop3()
	appendMsg(t, s, sent, "d")
	awaitWake(t, sentCh3, "append to Sent (new subscription)")
}
