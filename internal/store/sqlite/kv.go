package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/postern/postern/internal/store"
)

// The kv table (migration 9). Reads go to the reader pool; writes through the group-commit writer. Expiry times
// are Unix seconds, 0 for none.

var _ store.KV = (*Store)(nil)

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// KVGet implements store.KV.
func (s *Store) KVGet(ctx context.Context, key string, now time.Time) ([]byte, error) {
	var v []byte
	err := s.rdb.QueryRowContext(ctx, `SELECT CAST(value AS BLOB) FROM kv WHERE key = ? AND (expires = 0 OR expires > ?)`,
		key, now.Unix()).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("kv %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("kv %q: %w", key, err)
	}
	return v, nil
}

// KVPut implements store.KV.
func (s *Store) KVPut(ctx context.Context, key string, value []byte, expires time.Time) error {
	if value == nil {
		value = []byte{}
	}
	return s.do(ctx, "kv put", func(ctx context.Context, w *wtx) error {
		_, err := w.ExecContext(ctx, `INSERT INTO kv (key, value, expires) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires`, key, value, unixOrZero(expires))
		return err
	})
}

// KVAdd implements store.KV.
func (s *Store) KVAdd(ctx context.Context, key string, delta int64, now, expires time.Time) (int64, error) {
	var n int64
	err := s.do(ctx, "kv add", func(ctx context.Context, w *wtx) error {
		return w.QueryRowContext(ctx, `INSERT INTO kv (key, value, expires) VALUES (?1, ?2, ?4)
			ON CONFLICT (key) DO UPDATE SET
				value = CASE WHEN kv.expires > 0 AND kv.expires <= ?3 THEN ?2 ELSE CAST(kv.value AS INTEGER) + ?2 END,
				expires = CASE WHEN kv.expires > 0 AND kv.expires <= ?3 THEN ?4 ELSE kv.expires END
			RETURNING CAST(value AS INTEGER)`, key, delta, now.Unix(), unixOrZero(expires)).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("kv add %q: %w", key, err)
	}
	return n, nil
}

// KVDelete implements store.KV.
func (s *Store) KVDelete(ctx context.Context, key string) error {
	return s.do(ctx, "kv delete", func(ctx context.Context, w *wtx) error {
		_, err := w.ExecContext(ctx, `DELETE FROM kv WHERE key = ?`, key)
		return err
	})
}

// KVPurge implements store.KV.
func (s *Store) KVPurge(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := s.do(ctx, "kv purge", func(ctx context.Context, w *wtx) error {
		res, err := w.ExecContext(ctx, `DELETE FROM kv WHERE expires > 0 AND expires <= ?`, now.Unix())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
