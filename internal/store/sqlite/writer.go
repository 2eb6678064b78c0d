package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/postern/postern/internal/store"
)

// States of a deliverReq. The writer claims a request (waiting -> taken) right before applying it; a caller whose
// ctx ends first cancels it (waiting -> cancelled). Whoever wins the compare-and-swap decides, so a caller never
// hears "cancelled" for a delivery that was committed, nor nil for one that was not.
const (
	reqWaiting int32 = iota
	reqTaken
	reqCancelled
)

// deliverReq is one Deliver call waiting for the group-commit writer.
type deliverReq struct {
	d     *store.Delivery
	state atomic.Int32
	done  chan error // buffered: the writer never blocks on a caller that gave up
}

// Deliver commits d durably. With group commit, concurrent calls share one transaction and so one WAL fsync.
// It returns nil only after the commit is durable.
func (s *Store) Deliver(ctx context.Context, d *store.Delivery) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("deliver: %w", err)
	}
	if !s.group {
		return s.inTx(ctx, func(tx *sql.Tx) error { return applyDelivery(ctx, tx, d) })
	}
	req := &deliverReq{d: d, done: make(chan error, 1)}
	// s.reqs is unbuffered: once the writer has stopped no send can succeed, so a Deliver racing with Close gets
	// ErrClosed instead of waiting forever on a request nobody will read.
	select {
	case s.reqs <- req:
	case <-s.stop:
		return store.ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("deliver: %w", ctx.Err())
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		if req.state.CompareAndSwap(reqWaiting, reqCancelled) {
			return fmt.Errorf("deliver: %w", ctx.Err())
		}
		// The writer is applying it already: only the commit's outcome tells whether the message is stored.
		return <-req.done
	}
}

// writer is the group-commit loop: take one request, add every caller already waiting, commit them together.
// Callers that arrive during a commit wait in the channel and form the next batch, so the batch size adapts to
// the load with no timer and no added latency when idle.
func (s *Store) writer() {
	defer s.wg.Done()
	for {
		var first *deliverReq
		select {
		case first = <-s.reqs:
		case <-s.stop:
			s.drain()
			return
		}
		batch := []*deliverReq{first}
	fill:
		for len(batch) < s.maxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commitBatch(batch)
	}
}

// drain commits the requests of callers that were already handing one over when Close began.
func (s *Store) drain() {
	for {
		select {
		case r := <-s.reqs:
			s.commitBatch([]*deliverReq{r})
		default:
			return
		}
	}
}

// commitBatch applies each delivery inside its own SAVEPOINT so one failure (a full quota) does not fail the others,
// then commits once. Nobody hears "ok" before the commit returned.
func (s *Store) commitBatch(batch []*deliverReq) {
	// Not a caller's ctx: one caller giving up must not roll back the others' deliveries.
	ctx := context.Background()
	errs := make([]error, len(batch))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for i, r := range batch {
			if !r.state.CompareAndSwap(reqWaiting, reqTaken) {
				errs[i] = context.Canceled // the caller has returned already; nobody reads this
				continue
			}
			if _, err := tx.ExecContext(ctx, `SAVEPOINT d`); err != nil {
				return err
			}
			if errs[i] = applyDelivery(ctx, tx, r.d); errs[i] != nil {
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO d`); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `RELEASE d`); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Error("group commit failed", "deliveries", len(batch), "err", err)
	}
	for i, r := range batch {
		if err != nil {
			r.done <- fmt.Errorf("group commit of %d deliveries: %w", len(batch), err)
		} else {
			r.done <- errs[i]
		}
	}
}

// applyDelivery inserts the local copies and the queue entry of d inside tx.
func applyDelivery(ctx context.Context, tx *sql.Tx, d *store.Delivery) error {
	date := d.InternalDate
	if date.IsZero() {
		date = time.Now()
	}
	for _, c := range d.Local {
		if err := insertCopy(ctx, tx, c, d.Blob, date); err != nil {
			return err
		}
	}
	if d.Outbound != nil {
		if err := insertQueued(ctx, tx, d.Outbound); err != nil {
			return err
		}
	}
	return nil
}

func insertCopy(ctx context.Context, tx *sql.Tx, c store.LocalCopy, blob store.BlobRef, date time.Time) error {
	name := mailboxName(c.Mailbox)
	var quota, used int64
	var address string
	if err := tx.QueryRowContext(ctx, `SELECT address, quota_bytes, used_bytes FROM users WHERE id = ?`, c.UserID).Scan(&address, &quota, &used); err != nil {
		return fmt.Errorf("user #%d: %w", c.UserID, notFound(err))
	}
	if quota > 0 && used+blob.Size > quota {
		return fmt.Errorf("user %s uses %d of %d bytes, message has %d: %w", address, used, quota, blob.Size, store.ErrQuotaExceeded)
	}
	var mbID int64
	var uid uint32
	var modseq uint64
	err := tx.QueryRowContext(ctx, `UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
		WHERE user_id = ? AND name = ? RETURNING id, uidnext - 1, highestmodseq`, c.UserID, name).Scan(&mbID, &uid, &modseq)
	if err != nil {
		return fmt.Errorf("mailbox %s of %s: %w", name, address, notFound(err))
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO messages (mailbox_id, uid, blob_id, size, internal_date, flags, modseq)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, mbID, uid, blob.ID, blob.Size, date.Unix(), strings.Join(c.Flags, " "), modseq); err != nil {
		return fmt.Errorf("insert message: %w", err)
	}
	return nil // the messages_usage_insert trigger has added the size to users.used_bytes
}

func notFound(err error) error {
	if err == sql.ErrNoRows {
		return store.ErrNotFound
	}
	return err
}
