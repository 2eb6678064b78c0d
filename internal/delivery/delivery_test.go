package delivery

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/directory"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/mail/msginfo"
	"github.com/postern/postern/internal/store"
	"github.com/postern/postern/internal/store/sqlite"
)

func setup(t testing.TB) (*Agent, *sqlite.Store) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "p.db"), GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	st.AddDomain(ctx, "example.org")
	for _, u := range []store.User{{Address: "a@example.org"}, {Address: "b@example.org"}, {Address: "small@example.org", QuotaBytes: 50}} {
		u.PasswordHash = "x"
		if _, err := st.AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	st.SetAlias(ctx, store.Alias{Address: "team@example.org", Targets: []string{"a@example.org", "b@example.org", "far@remote.net"}})
	dir, _ := directory.New(directory.Options{Store: st})
	a, err := New(Options{Directory: dir, Store: st, Hostname: "mx.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	return a, st
}

func mustUser(t *testing.T, st *sqlite.Store, address string) store.User {
	t.Helper()
	u, err := st.GetUser(context.Background(), address)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func addr(s string) mail.Address { a, _ := mail.ParseAddress(s); return a }

func read(t *testing.T, st *sqlite.Store, id string) string {
	r, err := st.Blobs().Open(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

func inbox(t *testing.T, st *sqlite.Store, address string) []store.Message {
	ctx := context.Background()
	u, _ := st.GetUser(ctx, address)
	mb, _ := st.GetMailbox(ctx, u.ID, "INBOX")
	msgs, _ := st.ListMessages(ctx, mb.ID)
	return msgs
}

func TestLocalAndRemote(t *testing.T) {
	a, st := setup(t)
	ctx := context.Background()
	env := &mail.Envelope{QueueID: "Q1", From: addr("sender@remote.net"), Ret: "HDRS", EnvID: "E1",
		Recipients: []mail.Recipient{{Addr: addr("team@example.org")}, {Addr: addr("x@other.net"), Notify: []string{"FAILURE"}}}}
	body := "Received: from x\r\nSubject: hi\r\n\r\nbody\r\n"
	if err := a.Deliver(ctx, env, strings.NewReader(body), nil); err != nil {
		t.Fatal(err)
	}
	ma, mb := inbox(t, st, "a@example.org"), inbox(t, st, "b@example.org")
	if len(ma) != 1 || len(mb) != 1 || ma[0].BlobID != mb[0].BlobID {
		t.Fatalf("local copies: %+v %+v", ma, mb)
	}
	if got := read(t, st, ma[0].BlobID); got != "Return-Path: <sender@remote.net>\r\n"+body {
		t.Fatalf("local blob: %q", got)
	}
	// The parsed structure is stored with the blob, its offsets counted in the stored bytes (with Return-Path).
	mbox, _ := st.GetMailbox(ctx, mustUser(t, st, "a@example.org").ID, "INBOX")
	full, err := st.Messages(ctx, store.MessageQuery{MailboxID: mbox.ID, WithMeta: true})
	if err != nil || len(full) != 1 {
		t.Fatalf("Messages: %v %+v", err, full)
	}
	info, err := msginfo.Unmarshal(full[0].Meta)
	if err != nil || info.Envelope.Subject != "hi" || info.Root.BodyEnd != int64(len("Return-Path: <sender@remote.net>\r\n"+body)) {
		t.Fatalf("stored meta: %v %+v", err, info)
	}
	q, err := st.GetQueued(ctx, "Q1")
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, st, q.BlobID); got != body {
		t.Fatalf("outbound blob has Return-Path or differs: %q", got)
	}
	if len(q.Recipients) != 2 || q.Ret != "HDRS" || q.EnvID != "E1" {
		t.Fatalf("queue entry: %+v", q)
	}
	for _, r := range q.Recipients {
		switch r.Address {
		case "far@remote.net":
			if r.ORcpt != "rfc822;team@example.org" {
				t.Errorf("expanded alias ORCPT: %+v", r)
			}
		case "x@other.net":
			if len(r.Notify) != 1 || r.Notify[0] != "FAILURE" {
				t.Errorf("NOTIFY lost: %+v", r)
			}
		default:
			t.Errorf("unexpected recipient %+v", r)
		}
	}
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestFailures(t *testing.T) {
	a, st := setup(t)
	ctx := context.Background()
	env := &mail.Envelope{QueueID: "Q2", From: addr("s@remote.net"), Recipients: []mail.Recipient{{Addr: addr("a@example.org")}}}
	err := a.Deliver(ctx, env, io.MultiReader(strings.NewReader("Subject: x\r\n"), failing{}), nil)
	var de *Error
	if !errors.As(err, &de) || de.Code != 451 {
		t.Fatalf("broken body: %v", err)
	}
	if n := len(inbox(t, st, "a@example.org")); n != 0 {
		t.Fatalf("partial message delivered (%d)", n)
	}
	env.Recipients = []mail.Recipient{{Addr: addr("small@example.org")}}
	err = a.Deliver(ctx, env, strings.NewReader(strings.Repeat("x", 100)), nil)
	if !errors.As(err, &de) || de.Code != 552 || de.Enhanced != "5.2.2" {
		t.Fatalf("over quota: %v", err)
	}
}
