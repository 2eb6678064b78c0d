package pop2server

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/postern/postern/internal/store"
)

// fakeStore is an in-memory INBOX per user with blobs; it records the update calls.
type fakeStore struct {
	mu        sync.Mutex
	mailboxes map[int64]*fakeMailbox // by user ID
	blobs     map[string]string
	nextBlob  int
	failFlags error // returned by StoreFlags when set
	failExp   error // returned by Expunge when set
	expunges  []store.ExpungeRequest
	flagReqs  []store.StoreFlagsRequest
}

type fakeMailbox struct {
	mb   store.Mailbox
	msgs []store.Message
}

func newFakeStore() *fakeStore {
	return &fakeStore{mailboxes: map[int64]*fakeMailbox{}, blobs: map[string]string{}}
}

// addMailbox creates a user's empty INBOX.
func (f *fakeStore) addMailbox(userID int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mailboxes[userID] = &fakeMailbox{mb: store.Mailbox{ID: 100 + userID, UserID: userID, Name: "INBOX",
		UIDValidity: 1700000000, UIDNext: 1}}
}

// deliver appends a message to the user's INBOX and returns its UID.
func (f *fakeStore) deliver(userID int64, body string, flags ...string) uint32 {
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

func (f *fakeStore) GetMailbox(_ context.Context, userID int64, name string) (store.Mailbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mb, ok := f.mailboxes[userID]
	if !ok || !strings.EqualFold(name, "INBOX") {
		return store.Mailbox{}, fmt.Errorf("mailbox %q: %w", name, store.ErrNotFound)
	}
	return mb.mb, nil
}

func (f *fakeStore) byID(id int64) *fakeMailbox {
	for _, mb := range f.mailboxes {
		if mb.mb.ID == id {
			return mb
		}
	}
	return nil
}

func (f *fakeStore) Messages(_ context.Context, q store.MessageQuery) ([]store.Message, error) {
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

func (f *fakeStore) StoreFlags(_ context.Context, req store.StoreFlagsRequest) (store.StoreFlagsResult, error) {
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

func (f *fakeStore) Expunge(_ context.Context, req store.ExpungeRequest) (store.ExpungeResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expunges = append(f.expunges, req)
	if f.failExp != nil {
		return store.ExpungeResult{}, f.failExp
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

func (f *fakeStore) Open(_ context.Context, id string) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.blobs[id]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", id, store.ErrNotFound)
	}
	return io.NopCloser(strings.NewReader(b)), nil
}

// uids lists the UIDs in a user's INBOX.
func (f *fakeStore) uids(userID int64) []uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []uint32
	for _, m := range f.mailboxes[userID].msgs {
		out = append(out, m.UID)
	}
	return out
}

// flags returns the flags of one message.
func (f *fakeStore) flags(userID int64, uid uint32) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.mailboxes[userID].msgs {
		if m.UID == uid {
			return slices.Clone(m.Flags)
		}
	}
	return nil
}

func (f *fakeStore) expungeCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.expunges)
}

type users map[string]store.User

func (u users) GetUser(_ context.Context, a string) (store.User, error) {
	if x, ok := u[a]; ok {
		return x, nil
	}
	return store.User{}, store.ErrNotFound
}
