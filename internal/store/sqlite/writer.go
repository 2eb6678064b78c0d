package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/postern/postern/internal/store"
)

// States of a job. The writer claims a job (waiting -> taken) right before applying it; a caller whose ctx ends
// first cancels it (waiting -> cancelled). Whoever wins the compare-and-swap decides, so a caller never hears
// "cancelled" for a change that was committed, nor nil for one that was not.
const (
	reqWaiting int32 = iota
	reqTaken
	reqCancelled
)

// wtx is a write transaction as a job sees it: the SQL transaction plus the mailboxes the job changed, whose
// Notifier subscribers are woken once the commit is durable.
type wtx struct {
	*sql.Tx
	touched []int64
}

// touch records that the job changed these mailboxes.
func (w *wtx) touch(ids ...int64) { w.touched = append(w.touched, ids...) }

// jobFunc is one mutation. It runs inside the writer's transaction with the writer's ctx (never the caller's: one
// caller giving up must not roll back the others' work) and must report its results through its closure.
type jobFunc func(ctx context.Context, w *wtx) error

// job is one mutation waiting for the group-commit writer.
type job struct {
	fn    jobFunc
	state atomic.Int32
	done  chan error // buffered: the writer never blocks on a caller that gave up
}

// Deliver commits d durably. With group commit, concurrent calls share one transaction and so one WAL fsync.
// It returns nil only after the commit is durable.
func (s *Store) Deliver(ctx context.Context, d *store.Delivery) error {
	return s.do(ctx, "deliver", func(ctx context.Context, w *wtx) error { return applyDelivery(ctx, w, d) })
}

// do runs fn in a durable write transaction and wakes the subscribers of the mailboxes it touched after the
// commit. With group commit, fn shares the transaction (and its fsync) with concurrent jobs, inside its own
// SAVEPOINT so its failure does not fail the others.
func (s *Store) do(ctx context.Context, what string, fn jobFunc) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !s.group {
		w := &wtx{}
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			w.Tx = tx
			return fn(ctx, w)
		})
		if err == nil {
			s.notes.notify(w.touched)
		}
		return err
	}
	j := &job{fn: fn, done: make(chan error, 1)}
	// s.reqs is unbuffered: once the writer has stopped no send can succeed, so a call racing with Close gets
	// ErrClosed instead of waiting forever on a job nobody will read.
	select {
	case s.reqs <- j:
	case <-s.stop:
		return store.ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		if j.state.CompareAndSwap(reqWaiting, reqCancelled) {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		// The writer is applying it already: only the commit's outcome tells whether the change is stored.
		return <-j.done
	}
}

// writer is the group-commit loop: take one job, add every caller already waiting, commit them together.
// Callers that arrive during a commit wait in the channel and form the next batch, so the batch size adapts to
// the load with no timer and no added latency when idle.
func (s *Store) writer() {
	defer s.wg.Done()
	for {
		var first *job
		select {
		case first = <-s.reqs:
		case <-s.stop:
			s.drain()
			return
		}
		batch := []*job{first}
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

// drain commits the jobs of callers that were already handing one over when Close began.
func (s *Store) drain() {
	for {
		select {
		case r := <-s.reqs:
			s.commitBatch([]*job{r})
		default:
			return
		}
	}
}

// commitBatch applies each job inside its own SAVEPOINT so one failure (a full quota) does not fail the others,
// then commits once. Nobody hears "ok" before the commit returned; subscribers are woken after it, before the
// callers return, so a caller that returns has also woken every IDLE session concerned.
func (s *Store) commitBatch(batch []*job) {
	ctx := context.Background()
	errs := make([]error, len(batch))
	var touched []int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		touched = touched[:0]
		for i, r := range batch {
			if !r.state.CompareAndSwap(reqWaiting, reqTaken) {
				errs[i] = context.Canceled // the caller has returned already; nobody reads this
				continue
			}
			if _, err := tx.ExecContext(ctx, `SAVEPOINT d`); err != nil {
				return err
			}
			w := &wtx{Tx: tx}
			if errs[i] = r.fn(ctx, w); errs[i] != nil {
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO d`); err != nil {
					return err
				}
			} else {
				touched = append(touched, w.touched...)
			}
			if _, err := tx.ExecContext(ctx, `RELEASE d`); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Error("group commit failed", "jobs", len(batch), "err", err)
	} else {
		s.notes.notify(touched)
	}
	for i, r := range batch {
		if err != nil {
			r.done <- fmt.Errorf("group commit of %d changes: %w", len(batch), err)
		} else {
			r.done <- errs[i]
		}
	}
}

// applyDelivery inserts the local copies and the queue entry of d inside w.
func applyDelivery(ctx context.Context, w *wtx, d *store.Delivery) error {
	date := d.InternalDate
	if date.IsZero() {
		date = time.Now()
	}
	for _, c := range d.Local {
		if err := insertCopy(ctx, w, c, d.Blob, date); err != nil {
			return err
		}
	}
	if len(d.Local) > 0 {
		if err := putMeta(ctx, w, d.Blob.ID, d.Meta); err != nil {
			return err
		}
	}
	if d.Outbound != nil {
		if err := insertQueued(ctx, w.Tx, d.Outbound); err != nil {
			return err
		}
	}
	return nil
}

func insertCopy(ctx context.Context, w *wtx, c store.LocalCopy, blob store.BlobRef, date time.Time) error {
	name := mailboxName(c.Mailbox)
	var quota, used int64
	var address string
	if err := w.QueryRowContext(ctx, `SELECT address, quota_bytes, used_bytes FROM users WHERE id = ?`, c.UserID).Scan(&address, &quota, &used); err != nil {
		return fmt.Errorf("user #%d: %w", c.UserID, notFound(err))
	}
	if quota > 0 && used+blob.Size > quota {
		return fmt.Errorf("user %s uses %d of %d bytes, message has %d: %w", address, used, quota, blob.Size, store.ErrQuotaExceeded)
	}
	var mbID int64
	var uid uint32
	var modseq uint64
	err := w.QueryRowContext(ctx, `UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
		WHERE user_id = ? AND name = ? RETURNING id, uidnext - 1, highestmodseq`, c.UserID, name).Scan(&mbID, &uid, &modseq)
	if err != nil {
		return fmt.Errorf("mailbox %s of %s: %w", name, address, notFound(err))
	}
	// A filter's odd flag must not bounce the message: invalid flags are dropped, the rest canonicalised.
	flags := validFlags(c.Flags)
	if _, err := w.ExecContext(ctx, `INSERT INTO messages (mailbox_id, uid, blob_id, size, internal_date, flags, modseq, save_date)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, mbID, uid, blob.ID, blob.Size, date.Unix(), joinFlags(flags), modseq, time.Now().Unix()); err != nil {
		return fmt.Errorf("insert message: %w", err)
	}
	w.touch(mbID)
	return nil // the messages_usage_insert trigger has added the size to users.used_bytes
}

// putMeta stores the parsed structure of a blob once; copies of the blob share it.
func putMeta(ctx context.Context, w *wtx, blobID string, meta []byte) error {
	if meta == nil {
		return nil
	}
	if _, err := w.ExecContext(ctx, `INSERT INTO blob_meta (blob_id, meta) VALUES (?, ?) ON CONFLICT (blob_id) DO NOTHING`, blobID, meta); err != nil {
		return fmt.Errorf("store blob meta: %w", err)
	}
	return nil
}

func notFound(err error) error {
	if err == sql.ErrNoRows {
		return store.ErrNotFound
	}
	return err
}
