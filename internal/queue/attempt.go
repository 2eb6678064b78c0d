package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/postern/postern/internal/maillog"
	"github.com/postern/postern/internal/outbound"
	"github.com/postern/postern/internal/store"
)

// attempt delivers the queued recipients of m once and settles the outcome. Every recipient tried gets one mail
// log line with the remote reply. A recipient leaves the "queued" state only on a 2xx (sent) or 5xx (failed)
// answer, so nothing is lost when the attempt is cut short.
func (q *Queue) attempt(ctx context.Context, m store.OutboundMessage) {
	now := q.opts.Now()
	l := q.hold(ctx, m)
	defer l.stop()
	var pending []int
	for i, r := range m.Recipients {
		if r.Status == "queued" {
			pending = append(pending, i)
		}
	}
	results := q.send(l.ctx, m, pending)
	shutdown := ctx.Err() != nil
	lost := l.isLost()
	for j, i := range pending {
		q.apply(&m, &m.Recipients[i], results[j], shutdown || lost)
	}
	if lost {
		return // the new holder of the entry settles it; what we learnt is in the mail log
	}
	if shutdown {
		// Cut short by Shutdown: what was answered is kept, the rest is due at once after the restart, and the
		// attempt does not count.
		m.NextAttempt = now
	} else {
		m.Attempts++
		q.reschedule(&m, now)
	}
	settleCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	q.settle(settleCtx, l, m, now)
}

// send hands the recipients at pending to the transport and returns one result per recipient, in that order.
func (q *Queue) send(ctx context.Context, m store.OutboundMessage, pending []int) []outbound.Result {
	if len(pending) == 0 {
		return nil
	}
	msg := &outbound.Message{ID: m.ID, From: m.From, Size: m.Size, Ret: m.Ret, EnvID: m.EnvID, RequireTLS: m.RequireTLS,
		Open: func(ctx context.Context) (io.ReadCloser, error) { return q.opts.Store.Blobs().Open(ctx, m.BlobID) }}
	for _, i := range pending {
		r := m.Recipients[i]
		msg.Recipients = append(msg.Recipients, outbound.Recipient{Address: r.Address, Notify: r.Notify, ORcpt: r.ORcpt})
	}
	actx, cancel := context.WithTimeout(ctx, q.opts.Timeout)
	defer cancel()
	return matchResults(msg.Recipients, q.opts.Transport.Send(actx, msg))
}

// matchResults puts the transport's results in the order of rcpts. A recipient the transport gave no result for
// (a bug, not a reply) stays queued with a made-up 4xx, never counted as sent.
func matchResults(rcpts []outbound.Recipient, got []outbound.Result) []outbound.Result {
	out := make([]outbound.Result, len(rcpts))
	inOrder := len(got) == len(rcpts)
	for i, r := range rcpts {
		if inOrder && got[i].Recipient == r.Address {
			out[i] = got[i]
			continue
		}
		inOrder = false
		out[i] = outbound.Result{Recipient: r.Address, Code: 451, Enhanced: "4.3.0", Text: "no result from the delivery agent"}
		for _, res := range got {
			if res.Recipient == r.Address {
				out[i] = res
				break
			}
		}
	}
	return out
}

// apply records one recipient's result, logs it, and sets the notice the result calls for. cut marks an attempt
// that ended early (shutdown, lost lease): its temporary failures are not the remote's answer.
func (q *Queue) apply(m *store.OutboundMessage, r *store.OutboundRecipient, res outbound.Result, cut bool) {
	r.Remote = res.Remote
	ev := maillog.Event{QueueID: m.ID, From: m.From, To: r.Address, Size: m.Size, Remote: res.Remote, Status: res.Status(),
		Detail: fmt.Sprintf("attempt %d", m.Attempts+1)}
	switch {
	case res.Permanent() && res.Enhanced == "5.7.30" && m.From == "" && m.RequireTLS:
		// RFC 8689 5: REQUIRETLS SHOULD NOT make a bounce (null return-path) be discarded when the next hop does
		// not offer it: the DSN (which carries only the original header) is sent again without.
		m.RequireTLS = false
		r.Error, m.LastError = res.Status(), res.Status()
		ev.Event, ev.Detail = "deferred", ev.Detail+"; DSN sent again without REQUIRETLS"
		q.opts.MailLog.Log(ev)
	case res.Delivered():
		r.Status, r.Error = "sent", ""
		ev.Event, ev.Detail = "delivered", ev.Detail+"; "+tlsDetail(res)
		q.opts.MailLog.Log(ev)
		// RFC 3461 5.2.2: when the next hop does not take DSN parameters, report "relayed" ourselves.
		if wants(*r, "SUCCESS") && !res.DSN {
			r.Notice = &store.OutboundNotice{Action: actionRelayed, Status: "2.0.0", Diagnostic: res.Status()}
		}
	case res.Permanent():
		r.Status, r.Error = "failed", res.Status()
		ev.Event = "bounced"
		q.opts.MailLog.Log(ev)
		if wants(*r, "FAILURE") {
			st := res.Enhanced
			if st == "" {
				st = "5.0.0" // RFC 3463 3.1: a permanent failure without a more precise code
			}
			r.Notice = &store.OutboundNotice{Action: actionFailed, Status: st, Diagnostic: res.Status()}
		}
	default:
		ev.Event = "deferred"
		if cut {
			ev.Detail += "; cut short" // our own cancellation, not the remote's answer: the last real error stays
		} else {
			r.Error, m.LastError = res.Status(), res.Status()
		}
		q.opts.MailLog.Log(ev)
	}
}

// reschedule sets the next attempt of recipients still queued, bounces them when the message has expired, and
// sets the notices for expired and (once, after WarnAfter) delayed recipients.
func (q *Queue) reschedule(m *store.OutboundMessage, now time.Time) {
	if !slices.ContainsFunc(m.Recipients, func(r store.OutboundRecipient) bool { return r.Status == "queued" }) {
		return
	}
	age := now.Sub(m.CreatedAt)
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
				r.Notice = &store.OutboundNotice{Action: actionFailed, Status: "4.4.7", Diagnostic: diag}
			}
		}
		return
	}
	m.NextAttempt = nextAttempt(now, m.CreatedAt, q.opts.Expiry, q.opts.Jitter())
	if q.opts.WarnAfter < 0 || age < q.opts.WarnAfter {
		return
	}
	for i := range m.Recipients {
		r := &m.Recipients[i]
		if r.Status == "queued" && !r.Warned && wants(*r, "DELAY") {
			r.Warned = true
			r.Notice = &store.OutboundNotice{Action: actionDelayed, Status: statusOf(r.Error), Diagnostic: r.Error}
		}
	}
}

// settle commits the attempt: the DSN for the notices of m (this attempt's and any an earlier attempt could not
// commit) together with m's new state. A DSN is never lost: when it cannot be built or committed, the notices
// stay in the entry, which is kept for a later attempt to send them (after twice the expiry they are dropped,
// and logged, so a sender whose mailbox never takes them does not keep the entry forever).
func (q *Queue) settle(ctx context.Context, l *lease, m store.OutboundMessage, now time.Time) {
	if !slices.ContainsFunc(m.Recipients, func(r store.OutboundRecipient) bool { return r.Notice != nil }) {
		q.settleRetrying(ctx, l, m)
		return
	}
	bounce, err := q.notify(ctx, m, now)
	if err == nil {
		done := m
		done.Recipients = clearNotices(m.Recipients)
		err = l.settle(ctx, done, bounce)
		if err == nil {
			q.logDSN(m, bounce)
			return
		}
		if errors.Is(err, errLeaseLost) {
			q.log.Warn("queue entry not settled: it was removed or another worker holds it", "queue_id", m.ID, "err", err)
			return
		}
		err = fmt.Errorf("commit DSN: %w", err)
	}
	if now.Sub(m.CreatedAt) >= 2*q.opts.Expiry {
		q.log.Error("DSN dropped: it could not be sent within twice the expiry", "queue_id", m.ID, "err", err)
		q.opts.MailLog.Log(maillog.Event{QueueID: m.ID, Event: "discarded", To: m.From, Detail: "DSN dropped: " + err.Error()})
		m.Recipients = clearNotices(m.Recipients)
	} else {
		q.log.Error("DSN kept in the queue for the next attempt", "queue_id", m.ID, "err", err)
		if !m.NextAttempt.After(now) {
			m.NextAttempt = nextAttempt(now, m.CreatedAt, 2*q.opts.Expiry, q.opts.Jitter())
		}
	}
	q.settleRetrying(ctx, l, m)
}

// settleRetrying settles m without a DSN, trying again while the store fails (the heartbeat keeps the lease
// meanwhile): an entry left unsettled is tried again after its lease, and its recipients that got a 250 in this
// attempt would get the message a second time.
func (q *Queue) settleRetrying(ctx context.Context, l *lease, m store.OutboundMessage) {
	for try := 1; ; try++ {
		err := l.settle(ctx, m, nil)
		switch {
		case err == nil:
			return
		case errors.Is(err, errLeaseLost):
			q.log.Warn("queue entry not settled: it was removed or another worker holds it", "queue_id", m.ID, "err", err)
			return
		case try == 3:
			q.log.Error("settle queue entry; it is tried again when its lease runs out", "queue_id", m.ID, "err", err)
			return
		}
		q.log.Warn("settle queue entry; retrying", "queue_id", m.ID, "err", err)
		select {
		case <-ctx.Done():
			q.log.Error("settle queue entry; it is tried again when its lease runs out", "queue_id", m.ID, "err", err)
			return
		case <-time.After(time.Duration(try) * time.Second):
		}
	}
}

func clearNotices(rs []store.OutboundRecipient) []store.OutboundRecipient {
	out := slices.Clone(rs)
	for i := range out {
		out[i].Notice = nil
	}
	return out
}

func tlsDetail(res outbound.Result) string {
	if res.TLS == "" {
		return "no TLS"
	}
	return res.TLS
}
