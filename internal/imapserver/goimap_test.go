package imapserver

import (
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// go-imap v2's client is an independent implementation of the protocol: these tests check that it understands
// every answer.

func (e *env) goClient(h *imapclient.UnilateralDataHandler) *imapclient.Client {
	e.t.Helper()
	c, err := imapclient.DialTLS(e.ln.Addr().String(), &imapclient.Options{
		TLSConfig: &tls.Config{InsecureSkipVerify: true}, UnilateralDataHandler: h})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	if err := c.Login("alice@example.org", testPass).Wait(); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func TestGoIMAPClient(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ImplicitTLS = true })
	c := e.goClient(nil)
	if _, err := c.Enable(imap.CapIMAP4rev2).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		msg := msgN(i)
		cmd := c.Append("INBOX", int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft}})
		cmd.Write([]byte(msg))
		cmd.Close()
		if d, err := cmd.Wait(); err != nil || d.UID != imap.UID(i) {
			t.Fatalf("append %d: %+v %v", i, d, err)
		}
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 4 || sel.UIDNext != 5 {
		t.Fatalf("select: %+v %v", sel, err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{UID: true, Flags: true, Envelope: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true}, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, Peek: true}}}).Collect()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("fetch: %v %v", msgs, err)
	}
	if msgs[0].Envelope.Subject != "message 1" || msgs[0].Envelope.From[0].Host != "example.org" {
		t.Errorf("envelope %+v", msgs[0].Envelope)
	}
	if _, ok := msgs[1].BodyStructure.(*imap.BodyStructureSinglePart); !ok {
		t.Errorf("bodystructure %#v", msgs[1].BodyStructure)
	}
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	sd, err := c.Search(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagDeleted}}, nil).Wait()
	if err != nil || fmt.Sprint(sd.AllSeqNums()) != "[2]" {
		t.Fatalf("search: %+v %v", sd, err)
	}
	if mv, err := c.Move(imap.SeqSetNum(3), "Trash").Wait(); err != nil || mv.UIDValidity == 0 {
		t.Fatalf("move: %+v %v", mv, err)
	}
	exp, err := c.Expunge().Collect()
	if err != nil || fmt.Sprint(exp) != "[2]" {
		t.Fatalf("expunge: %v %v", exp, err)
	}
	st, err := c.Status("Trash", &imap.StatusOptions{NumMessages: true, Size: true}).Wait()
	if err != nil || *st.NumMessages != 1 || st.Size == nil || *st.Size == 0 {
		t.Fatalf("status: %+v %v", st, err)
	}
	list, err := c.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if err != nil || len(list) != 5 || list[0].Mailbox != "INBOX" || list[0].Status == nil || *list[0].Status.NumMessages != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if q, err := c.GetQuotaRoot("INBOX").Wait(); err != nil {
		t.Fatalf("quota: %+v %v", q, err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestGoIMAPIdle(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ImplicitTLS = true })
	e.deliver("INBOX", msgN(1))
	exists := make(chan uint32, 10)
	c := e.goClient(&imapclient.UnilateralDataHandler{Mailbox: func(d *imapclient.UnilateralDataMailbox) {
		if d.NumMessages != nil {
			exists <- *d.NumMessages
		}
	}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	e.deliver("INBOX", msgN(2))
	select {
	case n := <-exists:
		if n != 2 {
			t.Fatalf("EXISTS %d", n)
		}
	case <-time.After(10 * time.Second): // a hang guard, not a timed assertion
		t.Fatal("no EXISTS during IDLE")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}
