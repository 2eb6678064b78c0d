package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/postern/postern/internal/store"
)

// mailboxTests are the conformance tests of store.MailboxStore's mailbox management.
var mailboxTests = []namedTest{
	{"CreateDeleteMailbox", testCreateDeleteMailbox},
	{"UIDValidityNeverReused", testUIDValidityNeverReused},
	{"RenameMailbox", testRenameMailbox},
	{"RenameInbox", testRenameInbox},
	{"Subscriptions", testSubscriptions},
}

type namedTest struct {
	name string
	fn   func(t *testing.T, open Opener)
}

// newUser opens a store with domain example.org and one user.
func newUser(t *testing.T, open Opener, quota int64) (store.Store, store.User) {
	t.Helper()
	s, _ := openT(t, open)
	must(t, s.AddDomain(context.Background(), "example.org"))
	return s, addUser(t, s, "u@example.org", quota)
}

func getMailbox(t *testing.T, s store.Store, userID int64, name string) store.Mailbox {
	t.Helper()
	mb, err := s.GetMailbox(context.Background(), userID, name)
	must(t, err)
	return mb
}

// appendMsg appends body to a mailbox and checks the result against the mailbox.
func appendMsg(t *testing.T, s store.Store, mb store.Mailbox, body string, flags ...string) store.AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), store.AppendRequest{MailboxID: mb.ID, Blob: putBlob(t, s, body), Flags: flags})
	must(t, err)
	if res.UIDValidity != mb.UIDValidity || res.UID == 0 || res.ModSeq == 0 {
		t.Fatalf("Append = %+v in %+v", res, mb)
	}
	return res
}

func mailboxNames(t *testing.T, s store.Store, userID int64) string {
	t.Helper()
	st, err := s.ListMailboxes(context.Background(), userID)
	must(t, err)
	var names []string
	for _, mb := range st {
		names = append(names, mb.Name)
	}
	return strings.Join(names, " ")
}

func testCreateDeleteMailbox(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	mb, err := s.CreateMailbox(ctx, u.ID, "Work", `\Archive`)
	must(t, err)
	if mb.ID == 0 || mb.UserID != u.ID || mb.Name != "Work" || mb.UIDNext != 1 || mb.UIDValidity == 0 || mb.SpecialUse != `\Archive` || mb.Subscribed {
		t.Fatalf("CreateMailbox = %+v", mb)
	}
	if got := getMailbox(t, s, u.ID, "Work"); got != mb {
		t.Fatalf("GetMailbox = %+v, want %+v", got, mb)
	}
	if got, err := s.GetMailboxByID(ctx, mb.ID); err != nil || got != mb {
		t.Fatalf("GetMailboxByID = %+v, %v", got, err)
	}
	for _, name := range []string{"Work", "inbox", "INBOX", "Sent"} {
		if _, err := s.CreateMailbox(ctx, u.ID, name, ""); !errors.Is(err, store.ErrExists) {
			t.Fatalf("CreateMailbox(%s) again: %v", name, err)
		}
	}
	if _, err := s.CreateMailbox(ctx, u.ID, "Work/2024", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMailbox(ctx, u.ID+999, "X", ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CreateMailbox of an unknown user: %v", err)
	}
	appendMsg(t, s, mb, strings.Repeat("w", 100))
	appendMsg(t, s, mb, strings.Repeat("w", 50), `\Seen`)
	st, err := s.MailboxStatus(ctx, mb.ID)
	must(t, err)
	if st.Messages != 2 || st.Unseen != 1 || st.Size != 150 || st.UIDNext != 3 || st.Name != "Work" {
		t.Fatalf("MailboxStatus = %+v", st)
	}
	if used, _ := s.UsageBytes(ctx, u.ID); used != 150 {
		t.Fatalf("usage = %d, want 150", used)
	}
	for _, name := range []string{"INBOX", "inbox"} {
		if err := s.DeleteMailbox(ctx, u.ID, name); err == nil {
			t.Fatalf("DeleteMailbox(%s) succeeded", name)
		}
	}
	must(t, s.DeleteMailbox(ctx, u.ID, "Work"))
	if err := s.DeleteMailbox(ctx, u.ID, "Work"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteMailbox twice: %v", err)
	}
	if _, err := s.GetMailboxByID(ctx, mb.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetMailboxByID of a deleted mailbox: %v", err)
	}
	if _, err := s.MailboxStatus(ctx, mb.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("MailboxStatus of a deleted mailbox: %v", err)
	}
	// Its messages went with it (and their bytes off the quota); its child stays.
	if used, _ := s.UsageBytes(ctx, u.ID); used != 0 {
		t.Fatalf("usage after deleting the mailbox = %d", used)
	}
	if got, want := mailboxNames(t, s, u.ID), "INBOX Drafts Junk Sent Trash Work/2024"; got != want {
		t.Fatalf("mailboxes = %s, want %s", got, want)
	}
}

// testUIDValidityNeverReused: a mailbox deleted and created again, even within one second, gets a new UIDVALIDITY
// (RFC 9051 2.3.1.1), and UIDVALIDITY stays the same while the mailbox lives.
func testUIDValidityNeverReused(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	seen := map[uint32]string{}
	for _, mb := range must2(s.ListMailboxes(ctx, u.ID))(t) {
		if prev, dup := seen[mb.UIDValidity]; dup {
			t.Fatalf("%s and %s share UIDVALIDITY %d", prev, mb.Name, mb.UIDValidity)
		}
		seen[mb.UIDValidity] = mb.Name
	}
	for i := range 5 {
		mb, err := s.CreateMailbox(ctx, u.ID, "Again", "")
		must(t, err)
		if prev, dup := seen[mb.UIDValidity]; dup {
			t.Fatalf("round %d: UIDVALIDITY %d reused (had %s)", i, mb.UIDValidity, prev)
		}
		seen[mb.UIDValidity] = fmt.Sprint("Again#", i)
		appendMsg(t, s, mb, "x")
		if got := getMailbox(t, s, u.ID, "Again"); got.UIDValidity != mb.UIDValidity {
			t.Fatalf("UIDVALIDITY changed from %d to %d", mb.UIDValidity, got.UIDValidity)
		}
		must(t, s.DeleteMailbox(ctx, u.ID, "Again"))
	}
}

func must2[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		must(t, err)
		return v
	}
}

func testRenameMailbox(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	before := map[string]store.Mailbox{}
	for _, name := range []string{"a", "a/b", "a/b/c", "ab", "z"} {
		mb, err := s.CreateMailbox(ctx, u.ID, name, "")
		must(t, err)
		before[name] = mb
	}
	appendMsg(t, s, before["a/b"], "in a/b")
	must(t, s.Subscribe(ctx, u.ID, "a/b"))
	if err := s.RenameMailbox(ctx, u.ID, "a", "z"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("rename onto an existing mailbox: %v", err)
	}
	if err := s.RenameMailbox(ctx, u.ID, "nope", "y"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rename of a missing mailbox: %v", err)
	}
	if err := s.RenameMailbox(ctx, u.ID, "a", "a/b/d"); err == nil {
		t.Fatal("rename below itself succeeded")
	}
	if err := s.RenameMailbox(ctx, u.ID, "z", "inbox"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("rename onto INBOX: %v", err)
	}
	_, err := s.CreateMailbox(ctx, u.ID, "x/b/c", "")
	must(t, err)
	if err := s.RenameMailbox(ctx, u.ID, "a", "x"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("rename whose child would land on an existing mailbox: %v", err)
	}
	must(t, s.DeleteMailbox(ctx, u.ID, "x/b/c"))
	must(t, s.RenameMailbox(ctx, u.ID, "a", "x"))
	if got, want := mailboxNames(t, s, u.ID), "INBOX Drafts Junk Sent Trash ab x x/b x/b/c z"; got != want {
		t.Fatalf("after rename: %s, want %s", got, want)
	}
	for old, name := range map[string]string{"a": "x", "a/b": "x/b", "a/b/c": "x/b/c", "ab": "ab"} {
		mb := getMailbox(t, s, u.ID, name)
		if mb.ID != before[old].ID || mb.UIDValidity != before[old].UIDValidity || mb.UIDNext != before[old].UIDNext+boolInt(old == "a/b") {
			t.Fatalf("%s renamed to %s: %+v, was %+v", old, name, mb, before[old])
		}
	}
	if msgs := must2(s.Messages(ctx, store.MessageQuery{MailboxID: before["a/b"].ID}))(t); len(msgs) != 1 {
		t.Fatalf("messages of the renamed child: %+v", msgs)
	}
	if subs := must2(s.ListSubscriptions(ctx, u.ID))(t); !contains(subs, "x/b") || contains(subs, "a/b") {
		t.Fatalf("subscriptions after rename: %v", subs)
	}
}

func boolInt(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// testRenameInbox: renaming INBOX moves its messages into a new mailbox and leaves INBOX empty, its children in
// place (RFC 9051 6.3.6); INBOX keeps its UIDVALIDITY and never reuses a UID.
func testRenameInbox(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	inbox := getMailbox(t, s, u.ID, "INBOX")
	_, err := s.CreateMailbox(ctx, u.ID, "INBOX/child", "")
	must(t, err)
	r1 := appendMsg(t, s, inbox, "one", `\Seen`)
	r2 := appendMsg(t, s, inbox, "two")
	must(t, s.RenameMailbox(ctx, u.ID, "inbox", "Old"))
	old := getMailbox(t, s, u.ID, "Old")
	if old.ID == inbox.ID || old.UIDValidity == inbox.UIDValidity {
		t.Fatalf("Old = %+v, INBOX was %+v", old, inbox)
	}
	msgs := must2(s.Messages(ctx, store.MessageQuery{MailboxID: old.ID}))(t)
	if len(msgs) != 2 || !hasFlag(msgs[0].Flags, `\Seen`) || msgs[1].UID >= old.UIDNext {
		t.Fatalf("Old messages: %+v, UIDNEXT %d", msgs, old.UIDNext)
	}
	now := getMailbox(t, s, u.ID, "INBOX")
	if now.ID != inbox.ID || now.UIDValidity != inbox.UIDValidity || now.UIDNext != r2.UID+1 || now.HighestModSeq <= r2.ModSeq {
		t.Fatalf("INBOX after rename: %+v (was %+v)", now, inbox)
	}
	if st := must2(s.MailboxStatus(ctx, inbox.ID))(t); st.Messages != 0 {
		t.Fatalf("INBOX not empty: %+v", st)
	}
	cs := must2(s.Changes(ctx, inbox.ID, r2.ModSeq))(t)
	if fmt.Sprint(cs.Expunged) != fmt.Sprint([]uint32{r1.UID, r2.UID}) {
		t.Fatalf("INBOX tombstones after rename: %+v", cs)
	}
	if got, want := mailboxNames(t, s, u.ID), "INBOX Drafts INBOX/child Junk Old Sent Trash"; got != want {
		t.Fatalf("mailboxes = %s, want %s", got, want)
	}
	if r3 := appendMsg(t, s, now, "three"); r3.UID <= r2.UID {
		t.Fatalf("INBOX reused UID %d", r3.UID)
	}
	if used, _ := s.UsageBytes(ctx, u.ID); used != int64(len("one")+len("two")+len("three")) {
		t.Fatalf("usage after INBOX rename = %d", used)
	}
}

// testSubscriptions: subscriptions are names, independent of mailboxes (RFC 9051 6.3.7, 6.3.8).
func testSubscriptions(t *testing.T, open Opener) {
	ctx := context.Background()
	s, u := newUser(t, open, 0)
	subs := must2(s.ListSubscriptions(ctx, u.ID))(t)
	for _, mb := range store.DefaultMailboxes {
		if !contains(subs, mb.Name) {
			t.Fatalf("default mailbox %s not subscribed: %v", mb.Name, subs)
		}
	}
	must(t, s.Subscribe(ctx, u.ID, "Does/Not/Exist"))
	must(t, s.Subscribe(ctx, u.ID, "Does/Not/Exist")) // twice is fine
	mb, err := s.CreateMailbox(ctx, u.ID, "Later", "")
	must(t, err)
	if mb.Subscribed {
		t.Fatalf("new mailbox subscribed: %+v", mb)
	}
	must(t, s.Subscribe(ctx, u.ID, "Later"))
	if mb := getMailbox(t, s, u.ID, "Later"); !mb.Subscribed {
		t.Fatalf("subscribed mailbox: %+v", mb)
	}
	must(t, s.DeleteMailbox(ctx, u.ID, "Later"))
	must(t, s.Unsubscribe(ctx, u.ID, "inbox"))
	if err := s.Unsubscribe(ctx, u.ID, "INBOX"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Unsubscribe twice: %v", err)
	}
	if mb := getMailbox(t, s, u.ID, "INBOX"); mb.Subscribed {
		t.Fatalf("unsubscribed INBOX: %+v", mb)
	}
	subs = must2(s.ListSubscriptions(ctx, u.ID))(t)
	// A deleted mailbox stays subscribed: the server must not unsubscribe it on its own.
	if got, want := strings.Join(subs, " "), "Does/Not/Exist Drafts Junk Later Sent Trash"; got != want {
		t.Fatalf("ListSubscriptions = %s, want %s", got, want)
	}
}
