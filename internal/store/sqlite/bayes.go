package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/postern/postern/internal/store"
)

// The statistical spam filter's counts (migration 8). Reads go to the reader pool; BayesLearn goes through the
// group-commit writer like every other mutation, so training from IMAP shares commits with deliveries.

var _ store.BayesStore = (*Store)(nil)

// bayesChunk bounds the variables of one IN (...) query, well below SQLite's limit.
const bayesChunk = 500

// BayesTotals returns the user's trained spam and ham message counts (zero when nothing was trained).
func (s *Store) BayesTotals(ctx context.Context, userID int64) (store.BayesCount, error) {
	var c store.BayesCount
	err := s.rdb.QueryRowContext(ctx, `SELECT nspam, nham FROM bayes_totals WHERE user_id = ?`, userID).Scan(&c.Spam, &c.Ham)
	if errors.Is(err, sql.ErrNoRows) {
		return store.BayesCount{}, nil
	}
	if err != nil {
		return c, fmt.Errorf("bayes totals of user #%d: %w", userID, err)
	}
	return c, nil
}

// BayesTokens returns the counts of the tokens the user has seen, in chunks of bayesChunk per query.
func (s *Store) BayesTokens(ctx context.Context, userID int64, tokens []int64) (map[int64]store.BayesCount, error) {
	out := make(map[int64]store.BayesCount, len(tokens))
	for len(tokens) > 0 {
		n := min(len(tokens), bayesChunk)
		args := make([]any, 0, n+1)
		args = append(args, userID)
		for _, t := range tokens[:n] {
			args = append(args, t)
		}
		q := `SELECT token, nspam, nham FROM bayes_tokens WHERE user_id = ? AND token IN (?` + strings.Repeat(",?", n-1) + `)`
		if err := s.scanBayesTokens(ctx, out, q, args); err != nil {
			return nil, fmt.Errorf("bayes tokens of user #%d: %w", userID, err)
		}
		tokens = tokens[n:]
	}
	return out, nil
}

func (s *Store) scanBayesTokens(ctx context.Context, out map[int64]store.BayesCount, q string, args []any) error {
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var tok int64
		var c store.BayesCount
		if err := rows.Scan(&tok, &c.Spam, &c.Ham); err != nil {
			return err
		}
		out[tok] = c
	}
	return rows.Err()
}

// BayesLearn trains, moves or forgets one message in one durable transaction (see store.BayesLearnRequest).
func (s *Store) BayesLearn(ctx context.Context, req store.BayesLearnRequest) (bool, error) {
	if req.Key == "" {
		return false, errors.New("bayes learn: empty message key")
	}
	var changed bool
	err := s.do(ctx, "bayes learn", func(ctx context.Context, w *wtx) error {
		var err error
		changed, err = bayesLearn(ctx, w.Tx, req)
		return err
	})
	return changed, err
}

func bayesLearn(ctx context.Context, tx *sql.Tx, req store.BayesLearnRequest) (bool, error) {
	var was int
	err := tx.QueryRowContext(ctx, `SELECT spam FROM bayes_seen WHERE user_id = ? AND msg_key = ?`, req.UserID, req.Key).Scan(&was)
	trained := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("bayes seen: %w", err)
	}
	if !trained && req.Forget {
		return false, nil
	}
	if trained && !req.Forget && (was == 1) == req.Spam {
		return false, nil // already learned in this class
	}
	if trained {
		if err := bayesCount(ctx, tx, req.UserID, was == 1, -1, req.Tokens); err != nil {
			return false, err
		}
	}
	if req.Forget {
		_, err := tx.ExecContext(ctx, `DELETE FROM bayes_seen WHERE user_id = ? AND msg_key = ?`, req.UserID, req.Key)
		return true, err
	}
	if err := bayesCount(ctx, tx, req.UserID, req.Spam, +1, req.Tokens); err != nil {
		return false, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO bayes_seen (user_id, msg_key, spam) VALUES (?, ?, ?)
		ON CONFLICT (user_id, msg_key) DO UPDATE SET spam = excluded.spam`, req.UserID, req.Key, boolInt(req.Spam))
	if err != nil {
		return false, fmt.Errorf("bayes seen: %w", err)
	}
	return true, nil
}

// bayesCount adds delta (+1 or -1) to the class's message total and to each token's count. Counts never go
// below zero; a token whose counts both reach zero is deleted, so forgetting leaves no trace.
func bayesCount(ctx context.Context, tx *sql.Tx, userID int64, spam bool, delta int, tokens []int64) error {
	col := "nham"
	if spam {
		col = "nspam"
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO bayes_totals (user_id, `+col+`) VALUES (?, MAX(?, 0))
		ON CONFLICT (user_id) DO UPDATE SET `+col+` = MAX(`+col+` + ?, 0)`, userID, delta, delta); err != nil {
		return fmt.Errorf("bayes totals: %w", err)
	}
	var stmt *sql.Stmt
	var err error
	if delta > 0 {
		stmt, err = tx.PrepareContext(ctx, `INSERT INTO bayes_tokens (user_id, token, `+col+`, atime) VALUES (?, ?, 1, ?)
			ON CONFLICT (user_id, token) DO UPDATE SET `+col+` = `+col+` + 1, atime = excluded.atime`)
	} else {
		stmt, err = tx.PrepareContext(ctx, `UPDATE bayes_tokens SET `+col+` = MAX(`+col+` - 1, 0)
			WHERE user_id = ? AND token = ? AND ? IS NOT NULL`)
	}
	if err != nil {
		return fmt.Errorf("bayes tokens: %w", err)
	}
	defer stmt.Close()
	now := time.Now().Unix()
	for _, t := range tokens {
		if _, err := stmt.ExecContext(ctx, userID, t, now); err != nil {
			return fmt.Errorf("bayes token: %w", err)
		}
	}
	if delta < 0 {
		return bayesPrune(ctx, tx, userID, tokens)
	}
	return nil
}

// bayesPrune deletes the tokens whose counts are both zero, one primary-key lookup each.
func bayesPrune(ctx context.Context, tx *sql.Tx, userID int64, tokens []int64) error {
	del, err := tx.PrepareContext(ctx, `DELETE FROM bayes_tokens WHERE user_id = ? AND token = ? AND nspam = 0 AND nham = 0`)
	if err != nil {
		return fmt.Errorf("bayes tokens: %w", err)
	}
	defer del.Close()
	for _, t := range tokens {
		if _, err := del.ExecContext(ctx, userID, t); err != nil {
			return fmt.Errorf("bayes token: %w", err)
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
