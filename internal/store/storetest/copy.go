package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/postern/postern/internal/store"
)

// testCopyMove: COPY maps source UIDs to new consecutive destination UIDs in ascending source order (RFC 4315
// COPYUID), keeping blob, flags and internal date; MOVE also expunges the sources, with tombstones (RFC 6851).
func testCopyMove(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	inbox := getMailbox(t, s, u.ID, "INBOX")
	work, err := s.CreateMailbox(ctx, u.ID, "Work", "")
	must(t, err)
	appendMsg(t, s, work, "pre-existing") // so destination UIDs do not start at 1
	for i := range 5 {
		appendMsg(t, s, inbox, fmt.Sprint("m", i), fmt.Sprint("$k", i))
	}
	src := messages(t, s, inbox.ID)
	res, err := s.Copy(ctx, store.CopyRequest{SrcMailboxID: inbox.ID, DstMailboxID: work.ID,
		UIDs: store.UIDSet{{Start: 5, Stop: 0}, {Start: 2, Stop: 3}}})
	must(t, err)
	if res.UIDValidity != work.UIDValidity || fmt.Sprint(res.SrcUIDs) != "[2 3 5]" || fmt.Sprint(res.DstUIDs) != "[2 3 4]" {
		t.Fatalf("COPY: %+v", res)
	}
	dst := messages(t, s, work.ID)
	for i, uid := range res.DstUIDs {
		d, o := dst[i+1], src[res.SrcUIDs[i]-1]
		if d.UID != uid || d.BlobID != o.BlobID || fmt.Sprint(d.Flags) != fmt.Sprint(o.Flags) || !d.InternalDate.Equal(o.InternalDate) {
			t.Fatalf("copy of UID %d: %+v, source %+v", o.UID, d, o)
		}
	}
	if len(messages(t, s, inbox.ID)) != 5 {
		t.Fatal("COPY removed sources")
	}
	srcHigh := getMailbox(t, s, u.ID, "INBOX").HighestModSeq
	res, err = s.Copy(ctx, store.CopyRequest{SrcMailboxID: inbox.ID, DstMailboxID: work.ID, UIDs: store.UIDSet{{Start: 1, Stop: 2}, {Start: 4, Stop: 4}}, Move: true})
	must(t, err)
	if fmt.Sprint(res.SrcUIDs) != "[1 2 4]" || fmt.Sprint(res.DstUIDs) != "[5 6 7]" || res.SrcHighestModSeq <= srcHigh {
		t.Fatalf("MOVE: %+v", res)
	}
	if got := fmt.Sprint(uids(messages(t, s, inbox.ID))); got != "[3 5]" {
		t.Fatalf("sources left after MOVE: %s", got)
	}
	if mb := getMailbox(t, s, u.ID, "INBOX"); mb.HighestModSeq != res.SrcHighestModSeq {
		t.Fatalf("SrcHighestModSeq %d, mailbox says %d", res.SrcHighestModSeq, mb.HighestModSeq)
	}
	cs := must2(s.Changes(ctx, inbox.ID, srcHigh))(t)
	if fmt.Sprint(cs.Expunged) != "[1 2 4]" || len(cs.Messages) != 0 {
		t.Fatalf("changes after MOVE: %+v", cs)
	}
	// Nothing matches: nothing happens.
	res, err = s.Copy(ctx, store.CopyRequest{SrcMailboxID: inbox.ID, DstMailboxID: work.ID, UIDs: store.UIDSet{{Start: 100, Stop: 0}}, Move: true})
	must(t, err)
	if len(res.SrcUIDs) != 0 || len(res.DstUIDs) != 0 {
		t.Fatalf("COPY of nothing: %+v", res)
	}
	// Another user's mailbox is out of reach.
	other := addUser(t, s, "other@example.org", 0)
	if _, err := s.Copy(ctx, store.CopyRequest{SrcMailboxID: inbox.ID, DstMailboxID: getMailbox(t, s, other.ID, "INBOX").ID, UIDs: store.AllUIDs}); err == nil {
		t.Fatal("COPY into another user's mailbox succeeded")
	}
	if _, err := s.Copy(ctx, store.CopyRequest{SrcMailboxID: inbox.ID, DstMailboxID: work.ID + 1000, UIDs: store.AllUIDs}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("COPY to a missing mailbox: %v", err)
	}
	if used, _ := s.UsageBytes(ctx, u.ID); used != int64(len("pre-existing")+2*5+3*2) {
		t.Fatalf("usage after copies and a move: %d", used)
	}
}

// testQuotaAppendCopy: APPEND and COPY over quota fail with ErrQuotaExceeded and change nothing; MOVE within the
// user changes no usage and is allowed.
func testQuotaAppendCopy(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 100)
	inbox := getMailbox(t, s, u.ID, "INBOX")
	trash := getMailbox(t, s, u.ID, "Trash")
	appendMsg(t, s, inbox, strings.Repeat("a", 40))
	appendMsg(t, s, inbox, strings.Repeat("b", 40))
	before := getMailbox(t, s, u.ID, "INBOX")
	if _, err := s.Append(ctx, store.AppendRequest{MailboxID: inbox.ID, Blob: putBlob(t, s, strings.Repeat("c", 21))}); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("APPEND over quota: %v", err)
	}
	if mb := getMailbox(t, s, u.ID, "INBOX"); mb != before {
		t.Fatalf("failed APPEND changed the mailbox: %+v, was %+v", mb, before)
	}
	if _, err := s.Copy(ctx, store.CopyRequest{SrcMailboxID: inbox.ID, DstMailboxID: trash.ID, UIDs: store.AllUIDs}); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("COPY over quota: %v", err)
	}
	if mb := getMailbox(t, s, u.ID, "Trash"); mb.UIDNext != 1 || len(messages(t, s, trash.ID)) != 0 {
		t.Fatalf("failed COPY changed Trash: %+v", mb)
	}
	res, err := s.Copy(ctx, store.CopyRequest{SrcMailboxID: inbox.ID, DstMailboxID: trash.ID, UIDs: store.AllUIDs, Move: true})
	must(t, err)
	if len(res.DstUIDs) != 2 {
		t.Fatalf("MOVE at quota: %+v", res)
	}
	if used, _ := s.UsageBytes(ctx, u.ID); used != 80 {
		t.Fatalf("usage after MOVE = %d, want 80", used)
	}
	appendMsg(t, s, inbox, strings.Repeat("d", 20)) // exactly at the quota
	if used, _ := s.UsageBytes(ctx, u.ID); used != 100 {
		t.Fatalf("usage = %d, want 100", used)
	}
}

// testChanges: what a session learns after a wake-up, and what QRESYNC reports (RFC 7162 3.2.5.1).
func testChanges(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	inbox := getMailbox(t, s, u.ID, "INBOX")
	for range 4 {
		appendMsg(t, s, inbox, "c")
	}
	base := getMailbox(t, s, u.ID, "INBOX").HighestModSeq
	cs := must2(s.Changes(ctx, inbox.ID, 0))(t)
	if fmt.Sprint(uids(cs.Messages)) != "[1 2 3 4]" || len(cs.Expunged) != 0 || cs.HighestModSeq != base {
		t.Fatalf("Changes(0) = %+v", cs)
	}
	if cs := must2(s.Changes(ctx, inbox.ID, base))(t); len(cs.Messages) != 0 || len(cs.Expunged) != 0 || cs.HighestModSeq != base {
		t.Fatalf("Changes(HIGHESTMODSEQ) = %+v", cs)
	}
	_, err := s.StoreFlags(ctx, store.StoreFlagsRequest{MailboxID: inbox.ID, UIDs: store.UIDSet{{Start: 3, Stop: 3}}, Op: store.FlagsAdd, Flags: []string{`\Seen`}})
	must(t, err)
	_, err = s.Expunge(ctx, store.ExpungeRequest{MailboxID: inbox.ID, UIDs: store.UIDSet{{Start: 1, Stop: 1}, {Start: 4, Stop: 4}}})
	must(t, err)
	r5 := appendMsg(t, s, inbox, "new")
	cs = must2(s.Changes(ctx, inbox.ID, base))(t)
	if fmt.Sprint(uids(cs.Messages)) != fmt.Sprint([]uint32{3, r5.UID}) || fmt.Sprint(cs.Expunged) != "[1 4]" || cs.HighestModSeq != r5.ModSeq {
		t.Fatalf("Changes after STORE, EXPUNGE, APPEND = %+v", cs)
	}
	if !hasFlag(cs.Messages[0].Flags, `\Seen`) || cs.Messages[0].ModSeq <= base {
		t.Fatalf("changed message: %+v", cs.Messages[0])
	}
	if cs := must2(s.Changes(ctx, inbox.ID, r5.ModSeq-1))(t); fmt.Sprint(uids(cs.Messages)) != fmt.Sprint([]uint32{r5.UID}) || len(cs.Expunged) != 0 {
		t.Fatalf("Changes just before the last append = %+v", cs)
	}
	if _, err := s.Changes(ctx, inbox.ID+1000, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Changes of a missing mailbox: %v", err)
	}
}
