// Package storefake is an in-memory INBOX per user with blobs, for the tests of the POP3 and POP2 servers: it
// implements what they need of the store (GetMailbox, Messages, StoreFlags, Expunge) and of the blob store (Open),
// records the update calls, and can be told to fail them. The IMAP server's tests use the real SQLite store.
package storefake

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/postern/postern/internal/store"
)

// Store is the fake.
type Store struct {
	mu          sync.Mutex
	failFlags   error              // returned by StoreFlags when set
	failExpunge error              // returned by Expunge when set
	mailboxes   map[int64]*mailbox // by user ID
	blobs       map[string]string
	nextBlob    int
	expunges    []store.ExpungeRequest
	flagReqs    []store.StoreFlagsRequest
}

type mailbox struct {
	mb   store.Mailbox
	msgs []store.Message
}

// New returns an empty fake.
func New() *Store {
	return &Store{mailboxes: map[int64]*mailbox{}, blobs: map[string]string{}}
}

// AddMailbox creates a user's empty INBOX.
func (f *Store) AddMailbox(userID int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mailboxes[userID] = &mailbox{mb: store.Mailbox{ID: 100 + userID, UserID: userID, Name: "INBOX",
		UIDValidity: 1700000000, UIDNext: 1}}
}

// Fail makes StoreFlags return flags and Expunge return expunge from now on (nil: succeed).
func (f *Store) Fail(flags, expunge error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failFlags, f.failExpunge = flags, expunge
}

// RemoveMailbox drops a user's INBOX (the store losing it under a session).
func (f *Store) RemoveMailbox(userID int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.mailboxes, userID)
}

// DropBlobs forgets every blob (a blob store losing the bodies under a session).
func (f *Store) DropBlobs() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.blobs)
}

// Deliver appends a message to the user's INBOX and returns its UID.
func (f *Store) Deliver(userID int64, body string, flags ...string) uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	mb := f.mailboxes[userID]
	f.nextBlob++
	id := fmt.Sprintf("blob%d", f.nextBlob)
	f.blobs[id] = body
	uid := mb.mb.UIDNext
	mb.mb.UIDNext++
	mb.msgs = append(mb.msgs, store.Message{ID: int64(uid), MailboxID: mb.mb.ID, UID: uid, BlobID: id,
		Size: int64(len(body)), Flags: flags})
	return uid
}

// GetMailbox returns the user's INBOX; there is no other mailbox.
func (f *Store) GetMailbox(_ context.Context, userID int64, name string) (store.Mailbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mb, ok := f.mailboxes[userID]
	if !ok || !strings.EqualFold(name, "INBOX") {
		return store.Mailbox{}, fmt.Errorf("mailbox %q: %w", name, store.ErrNotFound)
	}
	return mb.mb, nil
}

func (f *Store) byID(id int64) *mailbox {
	for _, mb := range f.mailboxes {
		if mb.mb.ID == id {
			return mb
		}
	}
	return nil
}

// Messages lists a mailbox's messages (those in q.UIDs when set).
func (f *Store) Messages(_ context.Context, q store.MessageQuery) ([]store.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mb := f.byID(q.MailboxID)
	if mb == nil {
		return nil, store.ErrNotFound
	}
	var out []store.Message
	for _, m := range mb.msgs {
		if q.UIDs == nil || q.UIDs.Contains(m.UID) {
			m.Flags = slices.Clone(m.Flags)
			out = append(out, m)
		}
	}
	return out, nil
}

// StoreFlags records req and applies FlagsAdd (the only operation POP uses).
func (f *Store) StoreFlags(_ context.Context, req store.StoreFlagsRequest) (store.StoreFlagsResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flagReqs = append(f.flagReqs, req)
	if f.failFlags != nil {
		return store.StoreFlagsResult{}, f.failFlags
	}
	mb := f.byID(req.MailboxID)
	for i := range mb.msgs {
		if req.UIDs.Contains(mb.msgs[i].UID) && req.Op == store.FlagsAdd {
			for _, fl := range req.Flags {
				if !slices.Contains(mb.msgs[i].Flags, fl) {
					mb.msgs[i].Flags = append(mb.msgs[i].Flags, fl)
				}
			}
		}
	}
	return store.StoreFlagsResult{}, nil
}

// Expunge records req and removes the messages it names.
func (f *Store) Expunge(_ context.Context, req store.ExpungeRequest) (store.ExpungeResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expunges = append(f.expunges, req)
	if f.failExpunge != nil {
		return store.ExpungeResult{}, f.failExpunge
	}
	mb := f.byID(req.MailboxID)
	var res store.ExpungeResult
	mb.msgs = slices.DeleteFunc(mb.msgs, func(m store.Message) bool {
		if req.UIDs.Contains(m.UID) && (!req.RequireDeleted || slices.Contains(m.Flags, `\Deleted`)) {
			res.UIDs = append(res.UIDs, m.UID)
			return true
		}
		return false
	})
	return res, nil
}

// Open returns a blob's bytes.
func (f *Store) Open(_ context.Context, id string) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.blobs[id]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", id, store.ErrNotFound)
	}
	return io.NopCloser(strings.NewReader(b)), nil
}

// UIDs lists the UIDs in a user's INBOX.
func (f *Store) UIDs(userID int64) []uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []uint32
	for _, m := range f.mailboxes[userID].msgs {
		out = append(out, m.UID)
	}
	return out
}

// Flags returns the flags of one message.
func (f *Store) Flags(userID int64, uid uint32) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.mailboxes[userID].msgs {
		if m.UID == uid {
			return slices.Clone(m.Flags)
		}
	}
	return nil
}

// Expunges returns the Expunge calls so far.
func (f *Store) Expunges() []store.ExpungeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.expunges)
}

// FlagRequests returns the StoreFlags calls so far.
func (f *Store) FlagRequests() []store.StoreFlagsRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.flagReqs)
}
