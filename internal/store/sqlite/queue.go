package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/postern/postern/internal/store"
)

func insertQueued(ctx context.Context, tx *sql.Tx, m *store.OutboundMessage) error {
	rcpts, err := json.Marshal(m.Recipients)
	if err != nil {
		return err
	}
	created := m.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO queue (id, sender, recipients, blob_id, size, ret, envid, auth_user, attempts, next_attempt, last_error, created_at, require_tls)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, m.ID, m.From, string(rcpts), m.BlobID, m.Size, m.Ret, m.EnvID, m.AuthUser,
		m.Attempts, m.NextAttempt.UnixMilli(), m.LastError, created.UnixMilli(), m.RequireTLS)
	if isUnique(err) {
		return fmt.Errorf("queue id %s: %w", m.ID, store.ErrExists)
	}
	return err
}

const queueCols = `id, sender, recipients, blob_id, size, ret, envid, auth_user, attempts, next_attempt, last_error, created_at, lease_until, require_tls`

func scanQueued(row interface{ Scan(...any) error }) (store.OutboundMessage, error) {
	var m store.OutboundMessage
	var rcpts string
	var next, created, lease int64
	if err := row.Scan(&m.ID, &m.From, &rcpts, &m.BlobID, &m.Size, &m.Ret, &m.EnvID, &m.AuthUser, &m.Attempts, &next, &m.LastError, &created, &lease, &m.RequireTLS); err != nil {
		return m, err
	}
	m.NextAttempt, m.CreatedAt = time.UnixMilli(next), time.UnixMilli(created)
	if lease > 0 {
		m.LeaseUntil = time.UnixMilli(lease)
	}
	return m, json.Unmarshal([]byte(rcpts), &m.Recipients)
}

// ListQueue lists the outbound queue, oldest first.
func (s *Store) ListQueue(ctx context.Context) ([]store.OutboundMessage, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+queueCols+` FROM queue ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.OutboundMessage
	for rows.Next() {
		m, err := scanQueued(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// GetQueued returns one queue entry.
func (s *Store) GetQueued(ctx context.Context, id string) (store.OutboundMessage, error) {
	m, err := scanQueued(s.rdb.QueryRowContext(ctx, `SELECT `+queueCols+` FROM queue WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("queue id %s: %w", id, store.ErrNotFound)
	}
	return m, err
}

// RemoveQueued deletes a queue entry; its blob is collected by GCBlobs.
func (s *Store) RemoveQueued(ctx context.Context, id string) error {
	return s.execOne(ctx, "queue id "+id, `DELETE FROM queue WHERE id = ?`, id)
}

// RetryQueued makes one entry (or all, for id "") due now. It also records the request in retry_at: a worker
// holding the entry settles it with a next attempt no later than that, so a flush made during an attempt is not
// overwritten by the attempt's backoff (LeaseQueued clears it, since the attempt it starts answers the request).
func (s *Store) RetryQueued(ctx context.Context, id string) error {
	now := time.Now().UnixMilli()
	if id == "" {
		return s.do(ctx, "retry queue", func(ctx context.Context, w *wtx) error {
			_, err := w.ExecContext(ctx, `UPDATE queue SET next_attempt = ?, retry_at = ?`, now, now)
			return err
		})
	}
	return s.do(ctx, "retry queue id "+id, func(ctx context.Context, w *wtx) error {
		res, err := w.ExecContext(ctx, `UPDATE queue SET next_attempt = ?, retry_at = ? WHERE id = ?`, now, now, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("queue id %s: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// LeaseQueued claims up to limit due entries that no worker holds. A cheap read comes first so an idle queue
// polled every second costs no write transaction (and no fsync); the claim itself re-checks inside the write
// transaction, which is serialized, so two callers never claim one entry.
func (s *Store) LeaseQueued(ctx context.Context, now, until time.Time, limit int) ([]store.OutboundMessage, error) {
	if limit <= 0 {
		return nil, nil
	}
	nowMs := now.UnixMilli()
	var due bool
	if err := s.rdb.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM queue WHERE next_attempt <= ? AND lease_until <= ?)`,
		nowMs, nowMs).Scan(&due); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if !due {
		return nil, nil
	}
	var out []store.OutboundMessage
	err := s.do(ctx, "lease queue", func(ctx context.Context, w *wtx) error {
		out = out[:0]
		rows, err := w.QueryContext(ctx, `UPDATE queue SET lease_until = ?, retry_at = 0 WHERE id IN (SELECT id FROM queue
			WHERE next_attempt <= ? AND lease_until <= ? ORDER BY next_attempt, id LIMIT ?) RETURNING `+queueCols,
			until.UnixMilli(), nowMs, nowMs, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanQueued(rows)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	slices.SortFunc(out, func(a, b store.OutboundMessage) int {
		if c := a.NextAttempt.Compare(b.NextAttempt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// SettleQueued commits the bounce and the entry's new state (or its removal) in one transaction, provided the
// caller still holds the lease. An entry stays while a recipient is Outstanding: still to deliver, or owed a
// notice whose DSN is not committed yet.
func (s *Store) SettleQueued(ctx context.Context, m store.OutboundMessage, bounce *store.Delivery) error {
	done := !slices.ContainsFunc(m.Recipients, store.OutboundRecipient.Outstanding)
	rcpts, err := json.Marshal(m.Recipients)
	if err != nil {
		return err
	}
	return s.do(ctx, "settle queue id "+m.ID, func(ctx context.Context, w *wtx) error {
		var res sql.Result
		var err error
		if done {
			res, err = w.ExecContext(ctx, `DELETE FROM queue WHERE id = ? AND lease_until = ?`, m.ID, m.LeaseUntil.UnixMilli())
		} else {
			// A retry asked for during the attempt (retry_at > 0) wins over the attempt's backoff.
			next := m.NextAttempt.UnixMilli()
			res, err = w.ExecContext(ctx, `UPDATE queue SET recipients = ?, attempts = ?,
				next_attempt = CASE WHEN retry_at > 0 AND retry_at < ? THEN retry_at ELSE ? END, retry_at = 0,
				last_error = ?, require_tls = ?, lease_until = 0 WHERE id = ? AND lease_until = ?`, string(rcpts), m.Attempts,
				next, next, m.LastError, m.RequireTLS, m.ID, m.LeaseUntil.UnixMilli())
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("queue id %s leased until %s: %w", m.ID, m.LeaseUntil.Format(time.RFC3339Nano), store.ErrNotFound)
		}
		if bounce != nil {
			return applyDelivery(ctx, w, bounce)
		}
		return nil
	})
}

// RenewQueued moves a held lease from old to until, through the group writer like every write.
func (s *Store) RenewQueued(ctx context.Context, id string, old, until time.Time) error {
	return s.do(ctx, "renew queue lease "+id, func(ctx context.Context, w *wtx) error {
		res, err := w.ExecContext(ctx, `UPDATE queue SET lease_until = ? WHERE id = ? AND lease_until = ?`,
			until.UnixMilli(), id, old.UnixMilli())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("queue id %s leased until %s: %w", id, old.Format(time.RFC3339Nano), store.ErrNotFound)
		}
		return nil
	})
}
