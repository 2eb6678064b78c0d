// Package queue runs the durable outbound queue: workers lease due entries from the store, hand them to the
// outbound client, and settle each attempt in one transaction — delivered recipients leave, deferred ones get
// their next attempt (retryDelay, with jitter), and permanent failures, expiries and delay warnings turn into
// RFC 3464 delivery status notifications to the sender, delivered locally or queued like any other mail.
//
// A message leaves the queue only after the remote server answered 250 to it. Leases make a crash safe: a
// worker that dies holding an entry loses it when the lease runs out, and the entry is tried once more.
package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
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
	Lease     time.Duration // how long a worker owns an entry; default 15m; an attempt is cut off a minute before
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
		o.Lease = 15 * time.Minute
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

// attempt delivers the queued recipients of m once and settles the outcome.
func (q *Queue) attempt(ctx context.Context, m store.OutboundMessage) {
	now := q.opts.Now()
	var pending []int
	for i, r := range m.Recipients {
		if r.Status == "queued" {
			pending = append(pending, i)
		}
	}
	msg := &outbound.Message{ID: m.ID, From: m.From, Size: m.Size, Ret: m.Ret, EnvID: m.EnvID, RequireTLS: m.RequireTLS,
		Open: func(ctx context.Context) (io.ReadCloser, error) { return q.opts.Store.Blobs().Open(ctx, m.BlobID) }}
	for _, i := range pending {
		r := m.Recipients[i]
		msg.Recipients = append(msg.Recipients, outbound.Recipient{Address: r.Address, Notify: r.Notify, ORcpt: r.ORcpt})
	}
	var results []outbound.Result
	if len(pending) > 0 {
		actx, cancel := context.WithTimeout(ctx, q.opts.Lease-time.Minute)
		results = q.opts.Transport.Send(actx, msg)
		cancel()
	}
	settleCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if ctx.Err() != nil {
		// Shutting down: the attempt was cut short. Release the entry as it was, due at once after the restart.
		m.NextAttempt = now
		if err := q.opts.Store.SettleQueued(settleCtx, m, nil); err != nil {
			q.log.Warn("release queue entry", "queue_id", m.ID, "err", err)
		}
		return
	}
	var notices []reportRecipient
	for j, i := range pending {
		notices = append(notices, q.apply(&m, &m.Recipients[i], results[j])...)
	}
	m.Attempts++
	notices = append(notices, q.reschedule(&m, now)...)
	bounce, err := q.notify(settleCtx, m, now, notices)
	if err != nil {
		q.log.Error("build DSN", "queue_id", m.ID, "err", err)
	}
	if err := q.opts.Store.SettleQueued(settleCtx, m, bounce); err != nil {
		q.log.Error("settle queue entry", "queue_id", m.ID, "err", err)
		return
	}
	q.logDSN(m, bounce)
}

// apply records one recipient's result and logs it; it returns the DSN block the result calls for, if any.
func (q *Queue) apply(m *store.OutboundMessage, r *store.OutboundRecipient, res outbound.Result) []reportRecipient {
	r.Remote = res.Remote
	ev := maillog.Event{QueueID: m.ID, From: m.From, To: r.Address, Size: m.Size, Remote: res.Remote, Status: res.Status()}
	switch {
	case res.Delivered():
		r.Status, r.Error = "sent", ""
		ev.Event, ev.Status, ev.Detail = "delivered", fmt.Sprintf("%d %s", res.Code, res.Enhanced), tlsDetail(res)+"; "+res.Text
		q.opts.MailLog.Log(ev)
		// RFC 3461 5.2.2: when the next hop does not take DSN parameters, report "relayed" ourselves.
		if wants(*r, "SUCCESS") && !res.DSN {
			return []reportRecipient{{OutboundRecipient: *r, Action: actionRelayed, Status: "2.0.0", Diagnostic: res.Status()}}
		}
	case res.Permanent():
		r.Status, r.Error = "failed", res.Status()
		ev.Event = "bounced"
		q.opts.MailLog.Log(ev)
		if wants(*r, "FAILURE") {
			return []reportRecipient{{OutboundRecipient: *r, Action: actionFailed, Status: res.Enhanced, Diagnostic: res.Status()}}
		}
	default:
		r.Error = res.Status()
		m.LastError = res.Status()
		ev.Event, ev.Detail = "deferred", fmt.Sprintf("attempt %d", m.Attempts+1)
		q.opts.MailLog.Log(ev)
	}
	return nil
}

// reschedule sets the next attempt of recipients still queued, bounces them when the message has expired, and
// returns the DSN blocks for expired and (once, after WarnAfter) delayed recipients.
func (q *Queue) reschedule(m *store.OutboundMessage, now time.Time) []reportRecipient {
	if !slices.ContainsFunc(m.Recipients, func(r store.OutboundRecipient) bool { return r.Status == "queued" }) {
		return nil
	}
	age := now.Sub(m.CreatedAt)
	var out []reportRecipient
	if age >= q.opts.Expiry {
		for i := range m.Recipients {
			r := &m.Recipients[i]
			if r.Status != "queued" {
				continue
			}
			// RFC 3463 3.5: X.4.7 delivery time expired; the last answer tells why.
			r.Status = "failed"
			diag := r.Error
			r.Error = "4.4.7 Delivery time expired: " + diag
			q.opts.MailLog.Log(maillog.Event{QueueID: m.ID, Event: "bounced", From: m.From, To: r.Address, Size: m.Size,
				Remote: r.Remote, Status: "4.4.7", Detail: "delivery time expired after " + age.Round(time.Minute).String() + ": " + diag})
			if wants(*r, "FAILURE") {
				out = append(out, reportRecipient{OutboundRecipient: *r, Action: actionFailed, Status: "4.4.7", Diagnostic: diag})
			}
		}
		return out
	}
	m.NextAttempt = nextAttempt(now, m.CreatedAt, q.opts.Expiry, q.opts.Jitter())
	if q.opts.WarnAfter < 0 || age < q.opts.WarnAfter {
		return nil
	}
	for i := range m.Recipients {
		r := &m.Recipients[i]
		if r.Status == "queued" && !r.Warned && wants(*r, "DELAY") {
			r.Warned = true
			out = append(out, reportRecipient{OutboundRecipient: *r, Action: actionDelayed, Status: statusOf(r.Error), Diagnostic: r.Error})
		}
	}
	return out
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

func tlsDetail(res outbound.Result) string {
	if res.TLS == "" {
		return "no TLS"
	}
	return res.TLS
}
