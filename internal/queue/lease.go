package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/postern/postern/internal/store"
)

// errLeaseLost is returned by settle when the worker no longer holds the entry.
var errLeaseLost = fmt.Errorf("queue lease lost: %w", store.ErrNotFound)

// lease is a worker's hold on one queue entry. Leases are short (Options.Lease) so that a worker that dies frees
// its entry soon; a heartbeat renews the lease while the attempt runs. When a renewal finds the lease gone (an
// admin removed the entry, or the lease ran out while renewals failed and another worker took the entry), ctx
// ends, cutting the attempt short, and settle refuses: the new holder owns the entry's state now.
type lease struct {
	q   *Queue
	id  string
	ctx context.Context // ends when the lease is lost or the queue shuts down

	cancel context.CancelFunc
	stopc  chan struct{} // closed by stop: the heartbeat returns
	done   chan struct{} // closed when the heartbeat has returned

	mu      sync.Mutex // guards until, lost and settled, and serializes renewals with the settle
	until   time.Time  // the lease as the store has it
	lost    bool
	settled bool
}

// hold starts the heartbeat of the lease LeaseQueued gave m.
func (q *Queue) hold(ctx context.Context, m store.OutboundMessage) *lease {
	lctx, cancel := context.WithCancel(ctx)
	l := &lease{q: q, id: m.ID, ctx: lctx, cancel: cancel, until: m.LeaseUntil,
		stopc: make(chan struct{}), done: make(chan struct{})}
	go l.heartbeat()
	return l
}

func (l *lease) heartbeat() {
	defer close(l.done)
	t := time.NewTicker(l.q.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-l.stopc:
			return
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		l.renew()
	}
}

// renew moves the lease to Lease from now. A renewal that fails for another reason than a lost lease (the store
// is busy) keeps the lease as it is: if it runs out and another worker takes the entry, the next renewal says so.
func (l *lease) renew() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost || l.settled {
		return
	}
	until := l.q.opts.Now().Add(l.q.opts.Lease)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), l.q.opts.Heartbeat)
	defer cancel()
	err := l.q.opts.Store.RenewQueued(ctx, l.id, l.until, until)
	switch {
	case err == nil:
		l.until = until
	case errors.Is(err, store.ErrNotFound):
		l.lost = true
		l.cancel()
		l.q.log.Warn("queue lease lost: the entry was removed or another worker took it; attempt abandoned", "queue_id", l.id)
	default:
		l.q.log.Warn("renew queue lease", "queue_id", l.id, "until", l.until, "err", err)
	}
}

// isLost reports whether a renewal found the lease gone.
func (l *lease) isLost() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// settle stores m's new state with the lease the store has; no renewal runs meanwhile.
func (l *lease) settle(ctx context.Context, m store.OutboundMessage, bounce *store.Delivery) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost {
		return errLeaseLost
	}
	m.LeaseUntil = l.until
	err := l.q.opts.Store.SettleQueued(ctx, m, bounce)
	switch {
	case err == nil:
		l.settled = true
	case errors.Is(err, store.ErrNotFound):
		l.lost = true
		return fmt.Errorf("%w: %w", errLeaseLost, err)
	}
	return err
}

// stop ends the heartbeat and waits for it.
func (l *lease) stop() {
	close(l.stopc)
	<-l.done
	l.cancel()
}
