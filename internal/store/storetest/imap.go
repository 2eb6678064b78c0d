package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/postern/postern/internal/store"
)

// imapTests are the conformance tests of what IMAP's SELECT needs beyond listing: UNSEEN, the keywords in use,
// \Recent claims, and the zone of INTERNALDATE.
var imapTests = []namedTest{
	{"FirstUnseen", testFirstUnseen},
	{"Keywords", testKeywords},
	{"ClaimRecent", testClaimRecent},
	{"InternalDateZone", testInternalDateZone},
}

func testFirstUnseen(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	inbox := getMailbox(t, s, u.ID, "INBOX")
	first := func(want uint32) {
		t.Helper()
		got, err := s.FirstUnseen(ctx, inbox.ID)
		must(t, err)
		if got != want {
			t.Fatalf("FirstUnseen = %d, want %d", got, want)
		}
	}
	first(0)
	appendMsg(t, s, inbox, "Subject: 1\r\n\r\n1\r\n", `\Seen`)
	first(0)
	appendMsg(t, s, inbox, "Subject: 2\r\n\r\n2\r\n", `\Flagged`)
	appendMsg(t, s, inbox, "Subject: 3\r\n\r\n3\r\n")
	first(2)
	_, err := s.StoreFlags(ctx, store.StoreFlagsRequest{MailboxID: inbox.ID, UIDs: store.UIDSet{{Start: 2, Stop: 2}},
		Op: store.FlagsAdd, Flags: []string{`\seen`}})
	must(t, err)
	first(3)
	if _, err := s.FirstUnseen(ctx, inbox.ID+1000); err == nil {
		t.Fatal("FirstUnseen of a missing mailbox: no error")
	}
}

func testKeywords(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	inbox := getMailbox(t, s, u.ID, "INBOX")
	kw := func(want ...string) {
		t.Helper()
		got, err := s.Keywords(ctx, inbox.ID)
		must(t, err)
		if !slices.Equal(got, append([]string{}, want...)) {
			t.Fatalf("Keywords = %q, want %q", got, want)
		}
	}
	kw()
	appendMsg(t, s, inbox, "Subject: 1\r\n\r\n1\r\n", `\Seen`, "$Junk")
	appendMsg(t, s, inbox, "Subject: 2\r\n\r\n2\r\n", "work", "$Junk", `\Flagged`)
	kw("$Junk", "work")
	_, err := s.StoreFlags(ctx, store.StoreFlagsRequest{MailboxID: inbox.ID, UIDs: store.AllUIDs,
		Op: store.FlagsRemove, Flags: []string{"$junk"}})
	must(t, err)
	kw("work")
}

func testClaimRecent(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	mb, err := s.CreateMailbox(ctx, u.ID, "r", "")
	must(t, err)
	claim := func(upTo, want uint32) {
		t.Helper()
		from, err := s.ClaimRecent(ctx, mb.ID, upTo)
		must(t, err)
		if from != want {
			t.Fatalf("ClaimRecent(%d) = %d, want %d", upTo, from, want)
		}
	}
	status := func(want int) {
		t.Helper()
		st, err := s.MailboxStatus(ctx, mb.ID)
		must(t, err)
		if st.Recent != want {
			t.Fatalf("MailboxStatus.Recent = %d, want %d", st.Recent, want)
		}
	}
	status(0)
	claim(0, 1) // empty mailbox: nothing to claim
	appendMsg(t, s, mb, "Subject: 1\r\n\r\n1\r\n")
	appendMsg(t, s, mb, "Subject: 2\r\n\r\n2\r\n")
	status(2)
	claim(2, 1) // UIDs 1 and 2 are the caller's
	status(0)
	claim(2, 3) // and no one else's
	appendMsg(t, s, mb, "Subject: 3\r\n\r\n3\r\n")
	if got := getMailbox(t, s, u.ID, "r").FirstRecentUID; got != 3 {
		t.Fatalf("FirstRecentUID = %d, want 3", got)
	}
	status(1)
	claim(3, 3)
	claim(3, 4)
}

func testInternalDateZone(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	inbox := getMailbox(t, s, u.ID, "INBOX")
	other, err := s.CreateMailbox(ctx, u.ID, "other", "")
	must(t, err)
	date := time.Date(2008, 2, 14, 12, 0, 0, 0, time.FixedZone("", -(5*3600+30*60)))
	_, err = s.Append(ctx, store.AppendRequest{MailboxID: inbox.ID, Blob: putBlob(t, s, "Subject: z\r\n\r\nz\r\n"),
		InternalDate: date})
	must(t, err)
	_, err = s.Copy(ctx, store.CopyRequest{SrcMailboxID: inbox.ID, UIDs: store.AllUIDs, DstMailboxID: other.ID})
	must(t, err)
	for _, id := range []int64{inbox.ID, other.ID} {
		msgs := messages(t, s, id)
		got := msgs[0].InternalDate
		if _, off := got.Zone(); !got.Equal(date) || off != -(5*3600+30*60) {
			t.Fatalf("mailbox #%d: InternalDate = %v, want %v in its zone", id, got, date)
		}
	}
}
