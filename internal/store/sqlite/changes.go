package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/postern/postern/internal/store"
)

// deleteMessages removes msgs from their mailbox and records a tombstone with one new modseq for each, so that
// QRESYNC clients learn of it (RFC 7162 3.2.5.1). It returns the mailbox's new HIGHESTMODSEQ (0 when msgs is empty).
func deleteMessages(ctx context.Context, w *wtx, mailboxID int64, msgs []store.Message) (uint64, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	modseq, err := bumpModSeq(ctx, w, mailboxID)
	if err != nil {
		return 0, err
	}
	del, err := w.PrepareContext(ctx, `DELETE FROM messages WHERE id = ?`)
	if err != nil {
		return 0, err
	}
	defer del.Close()
	tomb, err := w.PrepareContext(ctx, `INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)`)
	if err != nil {
		return 0, err
	}
	defer tomb.Close()
	for _, m := range msgs {
		if _, err := del.ExecContext(ctx, m.ID); err != nil {
			return 0, fmt.Errorf("expunge UID %d: %w", m.UID, err)
		}
		if _, err := tomb.ExecContext(ctx, mailboxID, m.UID, modseq); err != nil {
			return 0, fmt.Errorf("tombstone UID %d: %w", m.UID, err)
		}
	}
	w.touch(mailboxID)
	return modseq, nil // the messages_usage_delete trigger has taken the sizes off users.used_bytes
}

// Expunge removes messages (all of the mailbox for a nil UIDs; only \Deleted ones with RequireDeleted) and
// returns their UIDs in ascending order.
func (s *Store) Expunge(ctx context.Context, req store.ExpungeRequest) (store.ExpungeResult, error) {
	var res store.ExpungeResult
	err := s.do(ctx, "expunge", func(ctx context.Context, w *wtx) error {
		res = store.ExpungeResult{UIDs: []uint32{}}
		mb, err := mailboxByID(ctx, w, req.MailboxID)
		if err != nil {
			return err
		}
		msgs, err := selectMessages(ctx, w, req.MailboxID, req.UIDs, true, false)
		if err != nil {
			return err
		}
		gone := msgs[:0]
		for _, m := range msgs {
			if !req.RequireDeleted || hasFlag(m.Flags, `\Deleted`) {
				gone = append(gone, m)
				res.UIDs = append(res.UIDs, m.UID)
			}
		}
		modseq, err := deleteMessages(ctx, w, req.MailboxID, gone)
		res.HighestModSeq = max(modseq, mb.HighestModSeq)
		return err
	})
	return res, err
}

// Copy copies (or, with Move, moves: RFC 6851, in one transaction) messages to another mailbox of the same user.
// The copies keep blob, flags and internal date, get new UIDs in ascending source order (RFC 4315 COPYUID) and a
// new SAVEDATE. A copy counts against the quota; a move does not, since it adds and removes the same bytes.
func (s *Store) Copy(ctx context.Context, req store.CopyRequest) (store.CopyResult, error) {
	var res store.CopyResult
	err := s.do(ctx, "copy", func(ctx context.Context, w *wtx) error {
		res = store.CopyResult{SrcUIDs: []uint32{}, DstUIDs: []uint32{}}
		src, err := mailboxByID(ctx, w, req.SrcMailboxID)
		if err != nil {
			return err
		}
		dst, err := mailboxByID(ctx, w, req.DstMailboxID)
		if err != nil {
			return err
		}
		if src.UserID != dst.UserID {
			return fmt.Errorf("copy from mailbox #%d to #%d: not the same user", src.ID, dst.ID)
		}
		res.UIDValidity, res.SrcHighestModSeq = dst.UIDValidity, src.HighestModSeq
		msgs, err := selectMessages(ctx, w, src.ID, req.UIDs, false, false)
		if err != nil || len(msgs) == 0 {
			return err
		}
		if !req.Move {
			var size int64
			for _, m := range msgs {
				size += m.Size
			}
			if err := checkQuota(ctx, w, dst.ID, size); err != nil {
				return err
			}
		}
		if err := insertCopies(ctx, w, dst.ID, msgs, &res); err != nil {
			return err
		}
		if req.Move {
			modseq, err := deleteMessages(ctx, w, src.ID, msgs)
			if err != nil {
				return err
			}
			res.SrcHighestModSeq = modseq
		}
		return nil
	})
	return res, err
}

// insertCopies adds msgs to mailbox dst under new consecutive UIDs and one new modseq, filling res's UID lists.
func insertCopies(ctx context.Context, w *wtx, dst int64, msgs []store.Message, res *store.CopyResult) error {
	var first uint32
	var modseq uint64
	err := w.QueryRowContext(ctx, `UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = highestmodseq + 1
		WHERE id = ? RETURNING uidnext - ?, highestmodseq`, len(msgs), dst, len(msgs)).Scan(&first, &modseq)
	if err != nil {
		return fmt.Errorf("mailbox #%d: %w", dst, notFound(err))
	}
	if uint64(first)+uint64(len(msgs)) > 1<<32-1 {
		return fmt.Errorf("mailbox #%d: UIDs exhausted", dst) // RFC 9051 2.3.1.1: a new UIDVALIDITY would be due
	}
	ins, err := w.PrepareContext(ctx, `INSERT INTO messages (mailbox_id, uid, blob_id, size, internal_date, flags, modseq, save_date, internal_tz)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	now := time.Now().Unix()
	for i, m := range msgs {
		uid := first + uint32(i)
		if _, err := ins.ExecContext(ctx, dst, uid, m.BlobID, m.Size, m.InternalDate.Unix(), joinFlags(m.Flags), modseq, now,
			zoneOffset(m.InternalDate)); err != nil {
			return fmt.Errorf("copy UID %d: %w", m.UID, err)
		}
		res.SrcUIDs = append(res.SrcUIDs, m.UID)
		res.DstUIDs = append(res.DstUIDs, uid)
	}
	w.touch(dst)
	return nil
}

// Changes reports what changed in a mailbox after sinceModSeq: messages with a greater modseq (new or with new
// flags) and tombstones of expunges after it. Both are read in one snapshot, with the HIGHESTMODSEQ they lead to.
func (s *Store) Changes(ctx context.Context, mailboxID int64, sinceModSeq uint64) (store.ChangeSet, error) {
	var cs store.ChangeSet
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return cs, fmt.Errorf("changes: %w", err)
	}
	defer tx.Rollback()
	mb, err := mailboxByID(ctx, tx, mailboxID)
	if err != nil {
		return cs, err
	}
	cs.HighestModSeq = mb.HighestModSeq
	rows, err := tx.QueryContext(ctx, `SELECT `+messageCols+` FROM messages m WHERE m.mailbox_id = ? AND m.modseq > ? ORDER BY m.uid`,
		mailboxID, sinceModSeq)
	if err != nil {
		return cs, fmt.Errorf("changes: %w", err)
	}
	cs.Messages = []store.Message{}
	for rows.Next() {
		m, err := scanMessage(rows, mailboxID)
		if err != nil {
			rows.Close()
			return cs, err
		}
		cs.Messages = append(cs.Messages, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return cs, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid`, mailboxID, sinceModSeq)
	if err != nil {
		return cs, fmt.Errorf("changes: %w", err)
	}
	defer rows.Close()
	cs.Expunged = []uint32{}
	for rows.Next() {
		var uid uint32
		if err := rows.Scan(&uid); err != nil {
			return cs, err
		}
		cs.Expunged = append(cs.Expunged, uid)
	}
	return cs, rows.Err()
}
