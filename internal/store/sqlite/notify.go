package sqlite

import (
	"sync"

	"github.com/postern/postern/internal/store"
)

// notifier is the in-process store.Notifier: one coalescing channel per subscription, keyed by mailbox ID. It is
// enough for one node; a multi-node backend (PostgreSQL) adds LISTEN/NOTIFY behind the same interface.
type notifier struct {
	mu   sync.Mutex                           // guards subs
	subs map[int64]map[chan struct{}]struct{} // mailbox ID -> subscriber channels
}

var _ store.Notifier = (*notifier)(nil)

func newNotifier() *notifier {
	return &notifier{subs: make(map[int64]map[chan struct{}]struct{})}
}

// Subscribe returns a channel that receives a value after each committed change of the mailbox. It has capacity
// one and the writer never blocks on it: changes while a wake-up is pending coalesce into that one.
func (n *notifier) Subscribe(mailboxID int64) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	set := n.subs[mailboxID]
	if set == nil {
		set = make(map[chan struct{}]struct{})
		n.subs[mailboxID] = set
	}
	set[ch] = struct{}{}
	n.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			delete(n.subs[mailboxID], ch)
			if len(n.subs[mailboxID]) == 0 {
				delete(n.subs, mailboxID)
			}
		})
	}
}

// notify wakes the subscribers of each mailbox in ids (duplicates are harmless).
func (n *notifier) notify(ids []int64) {
	if len(ids) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, id := range ids {
		for ch := range n.subs[id] {
			select {
			case ch <- struct{}{}:
			default: // a wake-up is pending already
			}
		}
	}
}

// Notifier returns the store's change notifier.
func (s *Store) Notifier() store.Notifier { return s.notes }
