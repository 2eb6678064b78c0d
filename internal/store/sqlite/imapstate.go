package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// unseenCond matches messages without \Seen; flags are stored space-separated with system flags spelled
// canonically, and LIKE ignores ASCII case as IMAP does for flags.
const unseenCond = `(' ' || flags || ' ') NOT LIKE '% \Seen %'`

// FirstUnseen returns the lowest UID without \Seen, 0 when there is none (RFC 3501 6.3.1 UNSEEN). The
// (mailbox_id, uid) index walks the mailbox in UID order and stops at the first match.
func (s *Store) FirstUnseen(ctx context.Context, mailboxID int64) (uint32, error) {
	var uid uint32
	err := s.rdb.QueryRowContext(ctx, `SELECT uid FROM messages WHERE mailbox_id = ? AND `+unseenCond+`
		ORDER BY uid LIMIT 1`, mailboxID).Scan(&uid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, s.mailboxExists(ctx, mailboxID)
	}
	if err != nil {
		return 0, fmt.Errorf("first unseen of mailbox #%d: %w", mailboxID, err)
	}
	return uid, nil
}

// Keywords lists the keywords (flags without a leading backslash) set on messages of the mailbox, sorted and
// without duplicates (compared case-insensitively, RFC 9051 2.3.2). Only distinct flag strings cross the driver.
func (s *Store) Keywords(ctx context.Context, mailboxID int64) ([]string, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT DISTINCT flags FROM messages WHERE mailbox_id = ? AND flags <> ''`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("keywords of mailbox #%d: %w", mailboxID, err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	out := []string{}
	for rows.Next() {
		var flags string
		if err := rows.Scan(&flags); err != nil {
			return nil, err
		}
		for _, f := range splitFlags(flags) {
			if k := strings.ToLower(f); !strings.HasPrefix(f, `\`) && !seen[k] {
				seen[k] = true
				out = append(out, f)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Strings(out)
	if len(out) == 0 {
		return out, s.mailboxExists(ctx, mailboxID)
	}
	return out, nil
}

// ClaimRecent returns the mailbox's first recent UID and moves it past upTo (RFC 3501 2.3.2: a message is recent
// in exactly one session). The common case, nothing new since the last claim, is a read without a commit.
func (s *Store) ClaimRecent(ctx context.Context, mailboxID int64, upTo uint32) (uint32, error) {
	mb, err := mailboxByID(ctx, s.rdb, mailboxID)
	if err != nil {
		return 0, err
	}
	if mb.FirstRecentUID > upTo {
		return mb.FirstRecentUID, nil
	}
	var from uint32
	err = s.do(ctx, "claim recent", func(ctx context.Context, w *wtx) error {
		if err := w.QueryRowContext(ctx, `SELECT first_recent_uid FROM mailboxes WHERE id = ?`, mailboxID).Scan(&from); err != nil {
			return fmt.Errorf("mailbox #%d: %w", mailboxID, notFound(err))
		}
		if from > upTo {
			return nil
		}
		_, err := w.ExecContext(ctx, `UPDATE mailboxes SET first_recent_uid = ? WHERE id = ?`, int64(upTo)+1, mailboxID)
		return err
	})
	return from, err
}
