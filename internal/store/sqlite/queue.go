package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
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
	_, err = tx.ExecContext(ctx, `INSERT INTO queue (id, sender, recipients, blob_id, size, ret, envid, auth_user, attempts, next_attempt, last_error, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, m.ID, m.From, string(rcpts), m.BlobID, m.Size, m.Ret, m.EnvID, m.AuthUser,
		m.Attempts, m.NextAttempt.UnixMilli(), m.LastError, created.UnixMilli())
	if isUnique(err) {
		return fmt.Errorf("queue id %s: %w", m.ID, store.ErrExists)
	}
	return err
}

const queueCols = `id, sender, recipients, blob_id, size, ret, envid, auth_user, attempts, next_attempt, last_error, created_at`

func scanQueued(row interface{ Scan(...any) error }) (store.OutboundMessage, error) {
	var m store.OutboundMessage
	var rcpts string
	var next, created int64
	if err := row.Scan(&m.ID, &m.From, &rcpts, &m.BlobID, &m.Size, &m.Ret, &m.EnvID, &m.AuthUser, &m.Attempts, &next, &m.LastError, &created); err != nil {
		return m, err
	}
	m.NextAttempt, m.CreatedAt = time.UnixMilli(next), time.UnixMilli(created)
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

// RetryQueued makes one entry (or all, for id "") due now.
func (s *Store) RetryQueued(ctx context.Context, id string) error {
	now := time.Now().UnixMilli()
	if id == "" {
		_, err := s.wdb.ExecContext(ctx, `UPDATE queue SET next_attempt = ?`, now)
		return err
	}
	return s.execOne(ctx, "queue id "+id, `UPDATE queue SET next_attempt = ? WHERE id = ?`, now, id)
}
