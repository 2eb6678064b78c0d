// Package queue runs the durable outbound queue: workers lease due entries from the store, hand them to the
// outbound client, and settle each attempt in one transaction — delivered recipients leave, deferred ones get
// their next attempt (retryDelay, with jitter), and permanent failures, expiries and delay warnings turn into
// RFC 3464 delivery status notifications to the sender, delivered locally or queued like any other mail.
//
// A message leaves the queue only after the remote server answered 250 to it (or failed for good) and every DSN it
// calls for is committed. Leases make a crash safe: a worker holds an entry with a short lease that a heartbeat
// renews while the attempt runs, so a worker that dies loses the entry within one lease, and the entry is tried
// once more; a worker whose lease was taken over (or whose entry an admin removed) stops and settles nothing.
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/postern/postern/internal/directory"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/maillog"
	"github.com/postern/postern/internal/outbound"
	"github.com/postern/postern/internal/store"
)

// Store is what the queue needs of the store (implemented by store.Store).
type Store interface {
	LeaseQueued(ctx context.Context, now, until time.Time, limit int) ([]store.OutboundMessage, error)
	SettleQueued(ctx context.Context, m store.OutboundMessage, bounce *store.Delivery) error
	RenewQueued(ctx context.Context, id string, old, until time.Time) error
	Blobs() store.BlobStore
}

// Transport delivers one message (implemented by *outbound.Client).
type Transport interface {
	Send(ctx context.Context, msg *outbound.Message) []outbound.Result
}

// Resolver finds where a DSN for a sender goes (implemented by *directory.Directory).
type Resolver interface {
	Resolve(ctx context.Context, rcpt mail.Address) (directory.Resolution, error)
}

// Options configure a Queue. The zero value of each duration picks the default.
type Options struct {
	Store     Store
	Transport Transport
	Directory Resolver
	Hostname  string // Reporting-MTA of DSNs
	MailLog   *maillog.Logger
	Logger    *slog.Logger

	Workers   int           // concurrent deliveries; default 8
	Poll      time.Duration // how often the store is asked for due entries; default 1s (the CLI's flush is seen within it)
	Lease     time.Duration // how long a worker owns an entry without renewing it; default 2m
	Heartbeat time.Duration // how often a running attempt renews its lease; default Lease/4
	Timeout   time.Duration // longest attempt (one Transport.Send); default 10m
	Expiry    time.Duration // a message still undelivered this long after it arrived bounces; default 5 days
	WarnAfter time.Duration // a delay DSN is sent once a message waited this long; default 4h; negative: never

	Now    func() time.Time // default time.Now
	Jitter func() float64   // in [0, 1); default math/rand/v2.Float64
}

// Queue schedules outbound deliveries.
type Queue struct {
	opts Options
	log  *slog.Logger
	kick chan struct{} // buffered(1): wake the scheduler now
}

// New returns a Queue; Run starts it.
func New(o Options) (*Queue, error) {
	if o.Store == nil || o.Transport == nil || o.Directory == nil {
		return nil, errors.New("queue: store, transport and directory are required")
	}
	if o.Hostname == "" {
		return nil, errors.New("queue: hostname is required")
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Lease <= 0 {
		o.Lease = 2 * time.Minute
	}
	if o.Heartbeat <= 0 || o.Heartbeat >= o.Lease {
		o.Heartbeat = o.Lease / 4
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Expiry <= 0 {
		o.Expiry = 5 * 24 * time.Hour
	}
	if o.WarnAfter == 0 {
		o.WarnAfter = 4 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Jitter == nil {
		o.Jitter = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Queue{opts: o, log: o.Logger, kick: make(chan struct{}, 1)}, nil
}

// Kick makes the scheduler look for due entries now instead of at its next poll.
func (q *Queue) Kick() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// Run schedules deliveries until ctx is done, then waits for the attempts in flight (they are cut short and
// their entries released for the next start).
func (q *Queue) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	busy := make(chan struct{}, q.opts.Workers) // one token per delivery in flight
	t := time.NewTicker(q.opts.Poll)
	defer t.Stop()
	for {
		if free := cap(busy) - len(busy); free > 0 {
			now := q.opts.Now()
			msgs, err := q.opts.Store.LeaseQueued(ctx, now, now.Add(q.opts.Lease), free)
			if err != nil && ctx.Err() == nil {
				q.log.Warn("lease queue entries", "err", err)
			}
			for _, m := range msgs {
				busy <- struct{}{}
				wg.Go(func() {
					defer func() { <-busy; q.Kick() }()
					defer func() {
						if p := recover(); p != nil {
							q.log.Error("queue worker panic", "queue_id", m.ID, "panic", p)
						}
					}()
					q.attempt(ctx, m)
				})
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-q.kick:
		}
	}
}

// wants reports whether a recipient asked for a kind of notification (RFC 3461 4.1). Without NOTIFY, failures
// and delays are reported (the usual MTA default), successes not.
func wants(r store.OutboundRecipient, kind string) bool {
	if len(r.Notify) == 0 {
		return kind != "SUCCESS"
	}
	for _, n := range r.Notify {
		if n == "NEVER" {
			return false
		}
		if n == kind {
			return true
		}
	}
	return false
}

// statusOf extracts the enhanced code of "451 4.7.1 text", or 4.0.0.
func statusOf(reply string) string {
	var code int
	var enh string
	if n, _ := fmt.Sscanf(reply, "%d %s", &code, &enh); n == 2 && len(enh) >= 5 && enh[1] == '.' {
		return enh
	}
	return "4.0.0"
}
