package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/postern/postern/internal/store"
)

// uidMatcher tests UIDs in ascending order against a UIDSet in amortized constant time: an IMAP sequence set over
// a mailbox with many holes can have tens of thousands of ranges, and UIDSet.Contains on each row would then be
// quadratic.
type uidMatcher struct {
	ranges [][2]uint32 // sorted, merged, inclusive
	i      int
}

func newUIDMatcher(set store.UIDSet) *uidMatcher {
	rs := make([][2]uint32, 0, len(set))
	for _, r := range set {
		if r.Stop == 0 {
			r.Stop = math.MaxUint32
		}
		if r.Start > r.Stop { // UIDRange.Contains matches nothing then
			continue
		}
		rs = append(rs, [2]uint32{r.Start, r.Stop})
	}
	slices.SortFunc(rs, func(a, b [2]uint32) int { return cmp.Compare(a[0], b[0]) })
	merged := rs[:0]
	for _, r := range rs {
		if n := len(merged); n > 0 && uint64(r[0]) <= uint64(merged[n-1][1])+1 {
			merged[n-1][1] = max(merged[n-1][1], r[1])
			continue
		}
		merged = append(merged, r)
	}
	return &uidMatcher{ranges: merged}
}

// bounds returns the interval spanning every range (lo > hi when there is none).
func (m *uidMatcher) bounds() (lo, hi uint32) {
	if len(m.ranges) == 0 {
		return 1, 0
	}
	return m.ranges[0][0], m.ranges[len(m.ranges)-1][1]
}

// match reports whether uid is in the set; successive calls must pass ascending UIDs.
func (m *uidMatcher) match(uid uint32) bool {
	for m.i < len(m.ranges) && m.ranges[m.i][1] < uid {
		m.i++
	}
	return m.i < len(m.ranges) && m.ranges[m.i][0] <= uid
}

// messageCols are the columns scanMessage reads. Not mailbox_id: every query is for one mailbox, and each column
// costs a driver call per row (a tenth of the time of listing 100,000 messages).
const messageCols = `m.id, m.uid, m.blob_id, m.size, m.internal_date, m.flags, m.modseq, m.save_date, m.internal_tz`

func scanMessage(row interface{ Scan(...any) error }, mailboxID int64, extra ...any) (store.Message, error) {
	m := store.Message{MailboxID: mailboxID}
	var date, saved int64
	var tz sql.NullInt64
	var flags string
	err := row.Scan(append([]any{&m.ID, &m.UID, &m.BlobID, &m.Size, &date, &flags, &m.ModSeq, &saved, &tz}, extra...)...)
	m.InternalDate, m.SaveDate, m.Flags = time.Unix(date, 0), time.Unix(saved, 0), splitFlags(flags)
	if tz.Valid {
		m.InternalDate = m.InternalDate.In(fixedZone(tz.Int64))
	}
	return m, err
}

// fixedZone is the zone of a stored offset; one *time.Location per offset, so listing many messages allocates
// none.
func fixedZone(offset int64) *time.Location {
	if loc, ok := zones.Load(offset); ok {
		return loc.(*time.Location)
	}
	loc, _ := zones.LoadOrStore(offset, time.FixedZone("", int(offset)))
	return loc.(*time.Location)
}

var zones sync.Map // int64 offset -> *time.Location

// zoneOffset is what internal_tz stores for t: its offset east of UTC in seconds.
func zoneOffset(t time.Time) int64 {
	_, off := t.Zone()
	return int64(off)
}

// selectMessages reads the messages of mailboxID whose UID is in set (all for a nil set when all is true), by
// ascending UID.
func selectMessages(ctx context.Context, q querier, mailboxID int64, set store.UIDSet, all, withMeta bool) ([]store.Message, error) {
	lo, hi := uint32(1), uint32(math.MaxUint32)
	var match *uidMatcher
	if !all || set != nil {
		match = newUIDMatcher(set)
		if lo, hi = match.bounds(); lo > hi {
			return []store.Message{}, nil
		}
	}
	query := `SELECT ` + messageCols + ` FROM messages m WHERE m.mailbox_id = ? AND m.uid BETWEEN ? AND ? ORDER BY m.uid`
	if withMeta {
		query = `SELECT ` + messageCols + `, bm.meta FROM messages m LEFT JOIN blob_meta bm ON bm.blob_id = m.blob_id
			WHERE m.mailbox_id = ? AND m.uid BETWEEN ? AND ? ORDER BY m.uid`
	}
	// Counting first (the index answers it alone) sizes the result once: growing a slice of 100,000 messages by
	// appending costs a quarter of the listing.
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ?`,
		mailboxID, lo, hi).Scan(&n); err != nil {
		return nil, fmt.Errorf("messages of mailbox #%d: %w", mailboxID, err)
	}
	rows, err := q.QueryContext(ctx, query, mailboxID, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("messages of mailbox #%d: %w", mailboxID, err)
	}
	defer rows.Close()
	out := make([]store.Message, 0, n)
	for rows.Next() {
		var meta []byte
		var extra []any
		if withMeta {
			extra = []any{&meta}
		}
		m, err := scanMessage(rows, mailboxID, extra...)
		if err != nil {
			return nil, err
		}
		if match != nil && !match.match(m.UID) {
			continue
		}
		m.Meta = meta
		out = append(out, m)
	}
	return out, rows.Err()
}

// Messages lists messages by ascending UID; without q.WithMeta it reads neither bodies nor parsed structures.
// A missing mailbox (deleted by another session, say) is ErrNotFound.
func (s *Store) Messages(ctx context.Context, q store.MessageQuery) ([]store.Message, error) {
	msgs, err := selectMessages(ctx, s.rdb, q.MailboxID, q.UIDs, true, q.WithMeta)
	if err == nil && len(msgs) == 0 {
		err = s.mailboxExists(ctx, q.MailboxID)
	}
	return msgs, err
}

// mailboxExists fails with ErrNotFound when there is no such mailbox. Listings call it only when they found no
// message, so the common case costs no extra query.
func (s *Store) mailboxExists(ctx context.Context, id int64) error {
	var ok bool
	if err := s.rdb.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM mailboxes WHERE id = ?)`, id).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("mailbox #%d: %w", id, store.ErrNotFound)
	}
	return nil
}

// MessageUIDs lists the UIDs of a mailbox in ascending order; the (mailbox_id, uid) index answers it alone. A
// missing mailbox is ErrNotFound.
func (s *Store) MessageUIDs(ctx context.Context, mailboxID int64) ([]uint32, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("uids of mailbox #%d: %w", mailboxID, err)
	}
	defer rows.Close()
	out := []uint32{}
	for rows.Next() {
		var uid uint32
		if err := rows.Scan(&uid); err != nil {
			return nil, err
		}
		out = append(out, uid)
	}
	if err := rows.Err(); err != nil || len(out) > 0 {
		return out, err
	}
	return out, s.mailboxExists(ctx, mailboxID)
}

// bumpModSeq takes the next modseq of a mailbox. One operation (a STORE, an EXPUNGE, a COPY into it) takes one
// modseq for every message it changes, as in RFC 7162's examples (3.1.3): what matters is that it is greater than
// every modseq the mailbox had.
func bumpModSeq(ctx context.Context, w *wtx, mailboxID int64) (uint64, error) {
	var modseq uint64
	err := w.QueryRowContext(ctx, `UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq`,
		mailboxID).Scan(&modseq)
	if err != nil {
		return 0, fmt.Errorf("mailbox #%d: %w", mailboxID, notFound(err))
	}
	return modseq, nil
}

// checkQuota fails with ErrQuotaExceeded when adding size bytes would take the mailbox owner over quota.
func checkQuota(ctx context.Context, w *wtx, mailboxID, size int64) error {
	var quota, used int64
	var address string
	err := w.QueryRowContext(ctx, `SELECT u.address, u.quota_bytes, u.used_bytes FROM users u
		JOIN mailboxes b ON b.user_id = u.id WHERE b.id = ?`, mailboxID).Scan(&address, &quota, &used)
	if err != nil {
		return fmt.Errorf("mailbox #%d: %w", mailboxID, notFound(err))
	}
	if quota > 0 && used+size > quota {
		return fmt.Errorf("user %s uses %d of %d bytes, adding %d: %w", address, used, quota, size, store.ErrQuotaExceeded)
	}
	return nil
}

// Append adds one message (IMAP APPEND) durably; its blob is already durable.
func (s *Store) Append(ctx context.Context, req store.AppendRequest) (store.AppendResult, error) {
	flags, err := normFlags(req.Flags)
	if err != nil {
		return store.AppendResult{}, fmt.Errorf("append: %w", err)
	}
	date, tz := req.InternalDate, any(nil) // NULL: the server's zone
	if date.IsZero() {
		date = time.Now()
	} else {
		tz = zoneOffset(date) // RFC 9051 2.3.3: INTERNALDATE keeps the zone APPEND gave
	}
	var res store.AppendResult
	err = s.do(ctx, "append", func(ctx context.Context, w *wtx) error {
		if err := checkQuota(ctx, w, req.MailboxID, req.Blob.Size); err != nil {
			return err
		}
		err := w.QueryRowContext(ctx, `UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
			WHERE id = ? RETURNING uidvalidity, uidnext - 1, highestmodseq`, req.MailboxID).Scan(&res.UIDValidity, &res.UID, &res.ModSeq)
		if err != nil {
			return fmt.Errorf("mailbox #%d: %w", req.MailboxID, notFound(err))
		}
		if _, err := w.ExecContext(ctx, `INSERT INTO messages (mailbox_id, uid, blob_id, size, internal_date, flags, modseq, save_date, internal_tz)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, req.MailboxID, res.UID, req.Blob.ID, req.Blob.Size, date.Unix(), joinFlags(flags),
			res.ModSeq, time.Now().Unix(), tz); err != nil {
			return fmt.Errorf("insert message: %w", err)
		}
		w.touch(req.MailboxID)
		return putMeta(ctx, w, req.Blob.ID, req.Meta)
	})
	return res, err
}

// StoreFlags changes flags (IMAP STORE), with CONDSTORE's UNCHANGEDSINCE (RFC 7162 3.1.3): a message whose modseq
// is above it is left alone and reported in Modified. Only messages whose flags really change take the new modseq.
func (s *Store) StoreFlags(ctx context.Context, req store.StoreFlagsRequest) (store.StoreFlagsResult, error) {
	flags, err := normFlags(req.Flags)
	if err != nil {
		return store.StoreFlagsResult{}, fmt.Errorf("store flags: %w", err)
	}
	if req.Op != store.FlagsReplace && req.Op != store.FlagsAdd && req.Op != store.FlagsRemove {
		return store.StoreFlagsResult{}, fmt.Errorf("store flags: unknown operation %d", req.Op)
	}
	var res store.StoreFlagsResult
	err = s.do(ctx, "store flags", func(ctx context.Context, w *wtx) error {
		res = store.StoreFlagsResult{}
		mb, err := mailboxByID(ctx, w, req.MailboxID)
		if err != nil {
			return err
		}
		msgs, err := selectMessages(ctx, w, req.MailboxID, req.UIDs, false, false)
		if err != nil {
			return err
		}
		res.HighestModSeq = mb.HighestModSeq
		// Changed messages are grouped by their new flags and each group updated in one statement: a STORE 1:*
		// usually leaves a handful of distinct flag sets, and one driver call per message costs more than SQLite's
		// own work.
		groups := map[string][]int64{}
		var order []string
		for i := range msgs {
			m := &msgs[i]
			if req.UnchangedSince != 0 && m.ModSeq > req.UnchangedSince {
				res.Modified = append(res.Modified, m.UID)
				continue
			}
			next, changed := applyFlags(m.Flags, req.Op, flags)
			if !changed {
				continue
			}
			if res.HighestModSeq == mb.HighestModSeq {
				if res.HighestModSeq, err = bumpModSeq(ctx, w, req.MailboxID); err != nil {
					return err
				}
				w.touch(req.MailboxID)
			}
			key := joinFlags(next)
			if _, ok := groups[key]; !ok {
				order = append(order, key)
			}
			groups[key] = append(groups[key], m.ID)
			m.Flags, m.ModSeq = next, res.HighestModSeq
		}
		for _, key := range order {
			ids, err := json.Marshal(groups[key])
			if err != nil {
				return err
			}
			if _, err := w.ExecContext(ctx, `UPDATE messages SET flags = ?, modseq = ? WHERE id IN (SELECT value FROM json_each(?))`,
				key, res.HighestModSeq, ids); err != nil {
				return fmt.Errorf("store flags: %w", err)
			}
		}
		res.Messages = msgs
		return nil
	})
	return res, err
}
