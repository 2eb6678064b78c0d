package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/store"
)

const bigMailbox = 100_000

// benchMailbox opens a store whose INBOX holds n messages (inserted directly, in one transaction, for speed).
func benchMailbox(b *testing.B, n int) (*Store, store.Mailbox) {
	b.Helper()
	ctx := context.Background()
	s, err := Open(ctx, Options{Path: filepath.Join(b.TempDir(), "postern.db"), GroupCommit: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.AddDomain(ctx, "example.org"); err != nil {
		b.Fatal(err)
	}
	u, err := s.AddUser(ctx, store.User{Address: "big@example.org", PasswordHash: "x"})
	if err != nil {
		b.Fatal(err)
	}
	mb, err := s.GetMailbox(ctx, u.ID, "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO messages (mailbox_id, uid, blob_id, size, internal_date, flags, modseq, save_date)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		now := time.Now().Unix()
		for i := 1; i <= n; i++ {
			flags := ""
			if i%3 == 0 {
				flags = `\Seen $Label1`
			}
			if _, err := stmt.ExecContext(ctx, mb.ID, i, fmt.Sprintf("%032x", i), 4000+i%1000, now, flags, i+1, now); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?`, n+1, n+1, mb.ID)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	mb, err = s.GetMailboxByID(ctx, mb.ID)
	if err != nil {
		b.Fatal(err)
	}
	return s, mb
}

// BenchmarkBigMailbox measures what SELECT, FETCH FLAGS and STORE 1:* need on a 100,000-message mailbox.
func BenchmarkBigMailbox(b *testing.B) {
	ctx := context.Background()
	s, mb := benchMailbox(b, bigMailbox)
	b.Run("MessageUIDs", func(b *testing.B) {
		for b.Loop() {
			if uids, err := s.MessageUIDs(ctx, mb.ID); err != nil || len(uids) != bigMailbox {
				b.Fatal(len(uids), err)
			}
		}
	})
	b.Run("Messages", func(b *testing.B) {
		for b.Loop() {
			if msgs, err := s.Messages(ctx, store.MessageQuery{MailboxID: mb.ID}); err != nil || len(msgs) != bigMailbox {
				b.Fatal(len(msgs), err)
			}
		}
	})
	b.Run("MessagesLast100", func(b *testing.B) {
		for b.Loop() {
			if msgs, err := s.Messages(ctx, store.MessageQuery{MailboxID: mb.ID, UIDs: store.UIDSet{{Start: bigMailbox - 99, Stop: 0}}}); err != nil || len(msgs) != 100 {
				b.Fatal(len(msgs), err)
			}
		}
	})
	// FETCH over a sequence set with a hole at every other UID: 50,000 ranges.
	var sparse store.UIDSet
	for uid := uint32(1); uid <= bigMailbox; uid += 2 {
		sparse = append(sparse, store.UIDRange{Start: uid, Stop: uid})
	}
	b.Run("MessagesSparse", func(b *testing.B) {
		for b.Loop() {
			if msgs, err := s.Messages(ctx, store.MessageQuery{MailboxID: mb.ID, UIDs: sparse}); err != nil || len(msgs) != bigMailbox/2 {
				b.Fatal(len(msgs), err)
			}
		}
	})
	b.Run("MailboxStatus", func(b *testing.B) {
		for b.Loop() {
			if st, err := s.MailboxStatus(ctx, mb.ID); err != nil || st.Messages != bigMailbox {
				b.Fatal(st, err)
			}
		}
	})
	b.Run("ChangesNone", func(b *testing.B) {
		for b.Loop() {
			mb, _ := s.GetMailboxByID(ctx, mb.ID)
			if cs, err := s.Changes(ctx, mb.ID, mb.HighestModSeq); err != nil || len(cs.Messages) != 0 {
				b.Fatal(cs, err)
			}
		}
	})
	// Each iteration flips \Flagged on every message: 100,000 real changes in one durable transaction.
	b.Run("StoreFlagsAll", func(b *testing.B) {
		op := store.FlagsAdd
		for b.Loop() {
			res, err := s.StoreFlags(ctx, store.StoreFlagsRequest{MailboxID: mb.ID, UIDs: store.AllUIDs, Op: op, Flags: []string{`\Flagged`}})
			if err != nil || len(res.Messages) != bigMailbox {
				b.Fatal(err)
			}
			op = map[store.FlagOp]store.FlagOp{store.FlagsAdd: store.FlagsRemove, store.FlagsRemove: store.FlagsAdd}[op]
		}
	})
}

// BenchmarkAppend measures durable IMAP APPEND with 16 concurrent clients per core, with and without group
// commit: with blob=new each APPEND writes and fsyncs its own blob first (what a server does); with blob=shared
// every APPEND reuses one stored blob, which isolates the metadata commit that group commit batches.
func BenchmarkAppend(b *testing.B) {
	msg := "Subject: bench\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 64)
	for _, mode := range []struct {
		group, newBlob bool
	}{{true, true}, {false, true}, {true, false}, {false, false}} {
		group, newBlob := mode.group, mode.newBlob
		name := map[bool]string{true: "new", false: "shared"}[newBlob]
		b.Run(fmt.Sprintf("group=%v/blob=%s", group, name), func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, Options{Path: filepath.Join(b.TempDir(), "postern.db"), GroupCommit: group})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.AddDomain(ctx, "example.org"); err != nil {
				b.Fatal(err)
			}
			u, err := s.AddUser(ctx, store.User{Address: "bench@example.org", PasswordHash: "x"})
			if err != nil {
				b.Fatal(err)
			}
			mb, err := s.GetMailbox(ctx, u.ID, "INBOX")
			if err != nil {
				b.Fatal(err)
			}
			shared, err := s.Blobs().Put(ctx, strings.NewReader(msg))
			if err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(16)
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ref, err := shared, error(nil)
					if newBlob {
						ref, err = s.Blobs().Put(ctx, strings.NewReader(msg))
					}
					if err == nil {
						_, err = s.Append(ctx, store.AppendRequest{MailboxID: mb.ID, Blob: ref, Flags: []string{`\Seen`}})
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
