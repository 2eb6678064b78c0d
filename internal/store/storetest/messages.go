package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/store"
)

// messageTests are the conformance tests of store.MailboxStore's message operations.
var messageTests = []namedTest{
	{"AppendUIDsNeverReused", testAppendUIDs},
	{"AppendConcurrent", testAppendConcurrent},
	{"MessagesQuery", testMessagesQuery},
	{"StoreFlags", testStoreFlags},
	{"StoreUnchangedSince", testUnchangedSince},
	{"Expunge", testExpunge},
	{"CopyMove", testCopyMove},
	{"QuotaAppendCopy", testQuotaAppendCopy},
	{"Changes", testChanges},
	{"Notifier", testNotifier},
}

func hasFlag(flags []string, f string) bool {
	return slices.ContainsFunc(flags, func(g string) bool { return strings.EqualFold(f, g) })
}

func uids(msgs []store.Message) []uint32 {
	out := []uint32{}
	for _, m := range msgs {
		out = append(out, m.UID)
	}
	return out
}

func messages(t *testing.T, s store.Store, mailboxID int64) []store.Message {
	t.Helper()
	msgs, err := s.Messages(context.Background(), store.MessageQuery{MailboxID: mailboxID})
	must(t, err)
	return msgs
}

// testAppendUIDs: UIDs and modseqs grow with every append, and an expunged UID is never handed out again, not even
// after the store is reopened.
func testAppendUIDs(t *testing.T, open Opener) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	must(t, s.AddDomain(ctx, "example.org"))
	u := addUser(t, s, "u@example.org", 0)
	inbox := getMailbox(t, s, u.ID, "INBOX")
	var last store.AppendResult
	for i := range 3 {
		r := appendMsg(t, s, inbox, fmt.Sprint("msg ", i))
		if r.UID != uint32(i+1) || r.ModSeq <= last.ModSeq {
			t.Fatalf("append %d: %+v after %+v", i, r, last)
		}
		last = r
	}
	res, err := s.Expunge(ctx, store.ExpungeRequest{MailboxID: inbox.ID, UIDs: store.UIDSet{{Start: 2, Stop: 3}}})
	must(t, err)
	if fmt.Sprint(res.UIDs) != "[2 3]" {
		t.Fatalf("Expunge = %+v", res)
	}
	must(t, s.Close())
	s = open(t, dir)
	defer s.Close()
	if got := getMailbox(t, s, u.ID, "INBOX"); got.UIDValidity != inbox.UIDValidity || got.UIDNext != 4 {
		t.Fatalf("INBOX after reopen: %+v, was %+v", got, inbox)
	}
	if r := appendMsg(t, s, inbox, "after"); r.UID != 4 || r.ModSeq <= res.HighestModSeq {
		t.Fatalf("append after expunge: %+v (expunge left HIGHESTMODSEQ %d)", r, res.HighestModSeq)
	}
	if got := must2(s.MessageUIDs(ctx, inbox.ID))(t); fmt.Sprint(got) != "[1 4]" {
		t.Fatalf("MessageUIDs = %v", got)
	}
	if _, err := s.Messages(ctx, store.MessageQuery{MailboxID: inbox.ID + 1000}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Messages of a missing mailbox: %v", err)
	}
	if _, err := s.MessageUIDs(ctx, inbox.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("MessageUIDs of a missing mailbox: %v", err)
	}
	if got, err := s.MessageUIDs(ctx, getMailbox(t, s, u.ID, "Trash").ID); err != nil || len(got) != 0 {
		t.Fatalf("MessageUIDs of an empty mailbox: %v, %v", got, err)
	}
	if _, err := s.Append(ctx, store.AppendRequest{MailboxID: inbox.ID + 1000, Blob: putBlob(t, s, "x")}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Append to a missing mailbox: %v", err)
	}
}

// testAppendConcurrent: concurrent appends (sharing commits where the backend groups them) get distinct UIDs and
// distinct modseqs.
func testAppendConcurrent(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	inbox := getMailbox(t, s, u.ID, "INBOX")
	const n = 64
	results := make([]store.AppendResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ref, err := s.Blobs().Put(ctx, strings.NewReader(fmt.Sprint("concurrent ", i)))
			if err == nil {
				results[i], err = s.Append(ctx, store.AppendRequest{MailboxID: inbox.ID, Blob: ref, Flags: []string{`\Seen`}})
			}
			errs[i] = err
		})
	}
	wg.Wait()
	uidSeen, modseqSeen := map[uint32]bool{}, map[uint64]bool{}
	for i, r := range results {
		must(t, errs[i])
		if uidSeen[r.UID] || modseqSeen[r.ModSeq] || r.UID < 1 || r.UID > n {
			t.Fatalf("append %d: %+v duplicates or is out of range", i, r)
		}
		uidSeen[r.UID], modseqSeen[r.ModSeq] = true, true
	}
	st := must2(s.MailboxStatus(ctx, inbox.ID))(t)
	if st.Messages != n || st.Unseen != 0 || st.UIDNext != n+1 {
		t.Fatalf("status after %d appends: %+v", n, st)
	}
}

// testMessagesQuery: UID selection, SAVEDATE, and Meta only when asked for (shared by the copies of a blob).
func testMessagesQuery(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	inbox := getMailbox(t, s, u.ID, "INBOX")
	sent := getMailbox(t, s, u.ID, "Sent")
	meta := []byte("parsed structure \x00\xff")
	date := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	ref := putBlob(t, s, "Subject: meta\r\n\r\nx\r\n")
	before := time.Now().Add(-time.Second)
	must(t, s.Deliver(ctx, &store.Delivery{Blob: ref, InternalDate: date, Meta: meta, Local: []store.LocalCopy{{UserID: u.ID}}}))
	ar, err := s.Append(ctx, store.AppendRequest{MailboxID: sent.ID, Blob: putBlob(t, s, "appended"), Meta: []byte("m2"), InternalDate: date})
	must(t, err)
	for range 3 {
		appendMsg(t, s, inbox, "plain")
	}
	all := messages(t, s, inbox.ID)
	if len(all) != 4 || all[0].Meta != nil || all[0].BlobID != ref.ID || !all[0].InternalDate.Equal(date) ||
		all[0].SaveDate.Before(before.Truncate(time.Second)) || all[0].MailboxID != inbox.ID {
		t.Fatalf("Messages without WithMeta: %+v", all)
	}
	withMeta := must2(s.Messages(ctx, store.MessageQuery{MailboxID: inbox.ID, WithMeta: true}))(t)
	if !bytes.Equal(withMeta[0].Meta, meta) || withMeta[1].Meta != nil {
		t.Fatalf("Messages WithMeta: %q, %q", withMeta[0].Meta, withMeta[1].Meta)
	}
	sentMsgs := must2(s.Messages(ctx, store.MessageQuery{MailboxID: sent.ID, WithMeta: true}))(t)
	if len(sentMsgs) != 1 || sentMsgs[0].UID != ar.UID || string(sentMsgs[0].Meta) != "m2" || !sentMsgs[0].InternalDate.Equal(date) {
		t.Fatalf("appended message: %+v", sentMsgs)
	}
	// A copy shares the blob and so its parsed structure.
	cr, err := s.Copy(ctx, store.CopyRequest{SrcMailboxID: inbox.ID, UIDs: store.UIDSet{{Start: 1, Stop: 1}}, DstMailboxID: sent.ID})
	must(t, err)
	copied := must2(s.Messages(ctx, store.MessageQuery{MailboxID: sent.ID, UIDs: store.UIDSet{{Start: cr.DstUIDs[0], Stop: cr.DstUIDs[0]}}, WithMeta: true}))(t)
	if len(copied) != 1 || !bytes.Equal(copied[0].Meta, meta) {
		t.Fatalf("copy's meta: %+v", copied)
	}
	for _, c := range []struct {
		set  store.UIDSet
		want string
	}{
		{nil, "[1 2 3 4]"},
		{store.UIDSet{}, "[]"},
		{store.AllUIDs, "[1 2 3 4]"},
		{store.UIDSet{{Start: 4, Stop: 4}, {Start: 1, Stop: 2}}, "[1 2 4]"},
		{store.UIDSet{{Start: 3, Stop: 0}}, "[3 4]"},
		{store.UIDSet{{Start: 9, Stop: 0}}, "[]"},
		{store.UIDSet{{Start: 2, Stop: 3}, {Start: 1, Stop: 2}, {Start: 3, Stop: 3}}, "[1 2 3]"},
		{store.UIDSet{{Start: 1, Stop: 1}, {Start: 3, Stop: 3}, {Start: 5, Stop: 1000}}, "[1 3]"},
	} {
		got := must2(s.Messages(ctx, store.MessageQuery{MailboxID: inbox.ID, UIDs: c.set}))(t)
		if fmt.Sprint(uids(got)) != c.want {
			t.Fatalf("Messages(%v) = %v, want %s", c.set, uids(got), c.want)
		}
	}
}

// testStoreFlags: flags match case-insensitively, system flags are canonical, \Recent is never stored, and only a
// real change takes a new modseq.
func testStoreFlags(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	inbox := getMailbox(t, s, u.ID, "INBOX")
	appendMsg(t, s, inbox, "one", `\recent`, `$Label1`, `\flagged`)
	r2 := appendMsg(t, s, inbox, "two")
	if m := messages(t, s, inbox.ID)[0]; fmt.Sprint(m.Flags) != `[$Label1 \Flagged]` {
		t.Fatalf("appended flags: %v", m.Flags)
	}
	store1 := func(op store.FlagOp, set store.UIDSet, flags ...string) store.StoreFlagsResult {
		t.Helper()
		res, err := s.StoreFlags(ctx, store.StoreFlagsRequest{MailboxID: inbox.ID, UIDs: set, Op: op, Flags: flags})
		must(t, err)
		return res
	}
	res := store1(store.FlagsAdd, store.AllUIDs, `\SEEN`, `$label1`)
	if len(res.Messages) != 2 || res.HighestModSeq <= r2.ModSeq {
		t.Fatalf("+FLAGS: %+v", res)
	}
	for _, m := range res.Messages {
		if m.ModSeq != res.HighestModSeq || !slices.Contains(m.Flags, `\Seen`) || !hasFlag(m.Flags, "$Label1") {
			t.Fatalf("+FLAGS result: %+v", m)
		}
	}
	if m := res.Messages[0]; fmt.Sprint(m.Flags) != `[$Label1 \Flagged \Seen]` {
		t.Fatalf("+FLAGS kept spelling: %v", m.Flags)
	}
	high := res.HighestModSeq
	// Nothing changes: no new modseq.
	res = store1(store.FlagsAdd, store.AllUIDs, `\seen`)
	if res.HighestModSeq != high || res.Messages[0].ModSeq != high {
		t.Fatalf("a no-op STORE changed modseqs: %+v (was %d)", res, high)
	}
	if mb := getMailbox(t, s, u.ID, "INBOX"); mb.HighestModSeq != high {
		t.Fatalf("HIGHESTMODSEQ %d after a no-op STORE, want %d", mb.HighestModSeq, high)
	}
	res = store1(store.FlagsRemove, store.UIDSet{{Start: 1, Stop: 1}}, `$LABEL1`, `\flagged`, `$absent`)
	if m := res.Messages[0]; fmt.Sprint(m.Flags) != `[\Seen]` || m.ModSeq <= high || res.HighestModSeq != m.ModSeq {
		t.Fatalf("-FLAGS: %+v", res)
	}
	if len(res.Messages) != 1 {
		t.Fatalf("-FLAGS on UID 1 returned %d messages", len(res.Messages))
	}
	res = store1(store.FlagsReplace, store.UIDSet{{Start: 2, Stop: 2}}, `\Answered`, `\Draft`, `\Recent`)
	if m := res.Messages[0]; fmt.Sprint(m.Flags) != `[\Answered \Draft]` {
		t.Fatalf("FLAGS: %+v", m)
	}
	res = store1(store.FlagsReplace, store.UIDSet{{Start: 2, Stop: 2}}, `\draft`, `\answered`)
	if m := res.Messages[0]; m.ModSeq != res.HighestModSeq || res.HighestModSeq != must2(s.GetMailboxByID(ctx, inbox.ID))(t).HighestModSeq {
		t.Fatalf("replace with the same flags: %+v", res)
	}
	if res := store1(store.FlagsAdd, nil, `\Seen`); len(res.Messages) != 0 {
		t.Fatalf("STORE on an empty set: %+v", res)
	}
	if res := store1(store.FlagsAdd, store.UIDSet{{Start: 7, Stop: 9}}, `\Seen`); len(res.Messages) != 0 {
		t.Fatalf("STORE on missing UIDs: %+v", res)
	}
	if _, err := s.StoreFlags(ctx, store.StoreFlagsRequest{MailboxID: inbox.ID, UIDs: store.AllUIDs, Op: store.FlagsAdd,
		Flags: []string{"two words"}}); err == nil {
		t.Fatal("a flag with a space was accepted")
	}
}

// testUnchangedSince: STORE UNCHANGEDSINCE changes only messages not modified since (RFC 7162 3.1.3).
func testUnchangedSince(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	inbox := getMailbox(t, s, u.ID, "INBOX")
	appendMsg(t, s, inbox, "one")
	appendMsg(t, s, inbox, "two")
	r3 := appendMsg(t, s, inbox, "three")
	since := r3.ModSeq
	res, err := s.StoreFlags(ctx, store.StoreFlagsRequest{MailboxID: inbox.ID, UIDs: store.UIDSet{{Start: 2, Stop: 2}}, Op: store.FlagsAdd, Flags: []string{"$x"}})
	must(t, err)
	res, err = s.StoreFlags(ctx, store.StoreFlagsRequest{MailboxID: inbox.ID, UIDs: store.AllUIDs, Op: store.FlagsAdd,
		Flags: []string{`\Deleted`}, UnchangedSince: since})
	must(t, err)
	if fmt.Sprint(res.Modified) != "[2]" || len(res.Messages) != 3 {
		t.Fatalf("UNCHANGEDSINCE: %+v", res)
	}
	for _, m := range res.Messages {
		if hasFlag(m.Flags, `\Deleted`) == (m.UID == 2) {
			t.Fatalf("UNCHANGEDSINCE changed the wrong messages: %+v", res.Messages)
		}
	}
	// UNCHANGEDSINCE equal to the message's modseq lets the change through.
	m2 := res.Messages[1]
	res, err = s.StoreFlags(ctx, store.StoreFlagsRequest{MailboxID: inbox.ID, UIDs: store.UIDSet{{Start: 2, Stop: 2}}, Op: store.FlagsAdd,
		Flags: []string{`\Deleted`}, UnchangedSince: m2.ModSeq})
	must(t, err)
	if len(res.Modified) != 0 || !hasFlag(res.Messages[0].Flags, `\Deleted`) || res.Messages[0].ModSeq <= m2.ModSeq {
		t.Fatalf("UNCHANGEDSINCE = modseq: %+v", res)
	}
}

// testExpunge: only \Deleted messages with RequireDeleted, UIDs ascending, usage and HIGHESTMODSEQ follow.
func testExpunge(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	inbox := getMailbox(t, s, u.ID, "INBOX")
	for i := range 6 {
		var flags []string
		if i%2 == 1 {
			flags = []string{`\deleted`}
		}
		appendMsg(t, s, inbox, strings.Repeat("e", 10), flags...)
	}
	high := getMailbox(t, s, u.ID, "INBOX").HighestModSeq
	res, err := s.Expunge(ctx, store.ExpungeRequest{MailboxID: inbox.ID, UIDs: store.UIDSet{{Start: 5, Stop: 0}, {Start: 1, Stop: 2}}, RequireDeleted: true})
	must(t, err)
	if fmt.Sprint(res.UIDs) != "[2 6]" || res.HighestModSeq <= high {
		t.Fatalf("UID EXPUNGE: %+v", res)
	}
	res, err = s.Expunge(ctx, store.ExpungeRequest{MailboxID: inbox.ID, RequireDeleted: true})
	must(t, err)
	if fmt.Sprint(res.UIDs) != "[4]" {
		t.Fatalf("EXPUNGE: %+v", res)
	}
	high = res.HighestModSeq
	res, err = s.Expunge(ctx, store.ExpungeRequest{MailboxID: inbox.ID, RequireDeleted: true})
	must(t, err)
	if len(res.UIDs) != 0 || res.HighestModSeq != high {
		t.Fatalf("EXPUNGE with nothing to do: %+v, HIGHESTMODSEQ was %d", res, high)
	}
	if used, _ := s.UsageBytes(ctx, u.ID); used != 30 {
		t.Fatalf("usage after expunging 3 of 6: %d", used)
	}
	// POP3's UPDATE removes whatever it is told, \Deleted or not.
	res, err = s.Expunge(ctx, store.ExpungeRequest{MailboxID: inbox.ID, UIDs: store.UIDSet{{Start: 1, Stop: 3}}})
	must(t, err)
	if fmt.Sprint(res.UIDs) != "[1 3]" || fmt.Sprint(uids(messages(t, s, inbox.ID))) != "[5]" {
		t.Fatalf("POP3 expunge: %+v", res)
	}
	if _, err := s.Expunge(ctx, store.ExpungeRequest{MailboxID: inbox.ID + 1000}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Expunge of a missing mailbox: %v", err)
	}
}
