//go:build integration

package integration

import (
	"crypto/tls"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// goIMAP logs a go-imap v2 client (an independent implementation) in over IMAPS.
func goIMAP(t *testing.T, s *server, user, pass string, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(s.addr(s.ports.IMAPS), &imapclient.Options{
		TLSConfig:             &tls.Config{InsecureSkipVerify: true},
		UnilateralDataHandler: h,
	})
	if err != nil {
		t.Fatalf("go-imap dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("go-imap LOGIN: %v", err)
	}
	return c
}

func goAppend(t *testing.T, c *imapclient.Client, mailbox, msg string, flags ...imap.Flag) *imap.AppendData {
	t.Helper()
	cmd := c.Append(mailbox, int64(len(msg)), &imap.AppendOptions{Flags: flags})
	if _, err := cmd.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("APPEND to %s: %v", mailbox, err)
	}
	return data
}

func requireCaps(t *testing.T, c *imapclient.Client, caps ...imap.Cap) {
	t.Helper()
	have, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range caps {
		if !have.Has(cp) {
			t.Errorf("CAPABILITY lacks %s (issue #3): %v", cp, have)
		}
	}
}

// TestIMAPGoClientSpecialUseAndListStatus: the default mailboxes carry their RFC 6154 attributes, and LIST
// RETURN (SPECIAL-USE STATUS (...)) (RFC 5258, 5819) answers for each.
func TestIMAPGoClientSpecialUseAndListStatus(t *testing.T) {
	s := newIMAPServer(t, serverOptions{})
	s.addUser("list@example.test", "list-secret-1")
	c := goIMAP(t, s, "list@example.test", "list-secret-1", nil)
	requireCaps(t, c, "SPECIAL-USE", "LIST-STATUS", "LIST-EXTENDED", "CHILDREN", "CREATE-SPECIAL-USE")
	goAppend(t, c, "INBOX", testMessage("one", "x"))
	goAppend(t, c, "INBOX", testMessage("two", "yy"), imap.FlagSeen)
	list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true,
		ReturnStatus: &imap.StatusOptions{NumMessages: true, NumUnseen: true}}).Collect()
	if err != nil {
		t.Fatalf("LIST RETURN (SPECIAL-USE STATUS): %v", err)
	}
	want := map[string]imap.MailboxAttr{"INBOX": "", "Sent": imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts,
		"Trash": imap.MailboxAttrTrash, "Junk": imap.MailboxAttrJunk}
	for _, l := range list {
		attr, ok := want[l.Mailbox]
		if !ok {
			t.Errorf("unexpected mailbox %q %v", l.Mailbox, l.Attrs)
			continue
		}
		delete(want, l.Mailbox)
		if l.Delim != '/' {
			t.Errorf("%s: delimiter %q, want '/'", l.Mailbox, l.Delim)
		}
		if attr != "" && !hasAttr(l.Attrs, attr) {
			t.Errorf("%s: attributes %v lack %s", l.Mailbox, l.Attrs, attr)
		}
		if l.Status == nil || l.Status.NumMessages == nil {
			t.Errorf("%s: no STATUS in the LIST answer (LIST-STATUS)", l.Mailbox)
			continue
		}
		if l.Mailbox == "INBOX" && (*l.Status.NumMessages != 2 || l.Status.NumUnseen == nil || *l.Status.NumUnseen != 1) {
			t.Errorf("INBOX LIST-STATUS: %+v, want MESSAGES 2 UNSEEN 1", l.Status)
		}
	}
	if len(want) > 0 {
		t.Errorf("LIST lacks %v", want)
	}
	// LIST (SPECIAL-USE) selects only special-use mailboxes (RFC 6154 3).
	su, err := c.List("", "*", &imap.ListOptions{SelectSpecialUse: true}).Collect()
	if err != nil {
		t.Fatalf("LIST (SPECIAL-USE): %v", err)
	}
	if len(su) != 4 {
		t.Errorf("LIST (SPECIAL-USE) returned %d mailboxes, want Sent, Drafts, Trash, Junk: %v", len(su), listNames(su))
	}
	// CREATE-SPECIAL-USE (RFC 6154 3).
	if err := c.Create("Old mail", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrArchive}}).Wait(); err != nil {
		t.Fatalf("CREATE (USE (\\Archive)): %v", err)
	}
	a, err := c.List("", "Old mail", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil || len(a) != 1 || !hasAttr(a[0].Attrs, imap.MailboxAttrArchive) {
		t.Errorf("LIST of a mailbox created with USE (\\Archive): %v, %v", a, err)
	}
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

func listNames(l []*imap.ListData) []string {
	var n []string
	for _, x := range l {
		n = append(n, x.Mailbox)
	}
	return n
}

// TestIMAPGoClientStatusSizeAppendLimit: STATUS SIZE (RFC 8438) is the sum of RFC822.SIZE; APPENDLIMIT (RFC
// 7889) is advertised and a larger APPEND is refused with [TOOBIG] while the connection goes on.
func TestIMAPGoClientStatusSizeAppendLimit(t *testing.T) {
	s := newIMAPServer(t, serverOptions{})
	s.addUser("size@example.test", "size-secret-1")
	c := goIMAP(t, s, "size@example.test", "size-secret-1", nil)
	requireCaps(t, c, "STATUS=SIZE")
	m1, m2 := testMessage("a", strings.Repeat("a", 100)), testMessage("b", strings.Repeat("b", 1000))
	goAppend(t, c, "INBOX", m1)
	goAppend(t, c, "INBOX", m2)
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, Size: true}).Wait()
	if err != nil {
		t.Fatalf("STATUS INBOX (MESSAGES SIZE): %v", err)
	}
	if st.NumMessages == nil || *st.NumMessages != 2 || st.Size == nil || *st.Size != int64(len(m1)+len(m2)) {
		t.Errorf("STATUS: %+v, want MESSAGES 2 SIZE %d", st, len(m1)+len(m2))
	}

	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	limit := int64(-1)
	for cp := range caps {
		if v, ok := strings.CutPrefix(string(cp), "APPENDLIMIT="); ok {
			limit, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if limit <= 0 {
		t.Fatalf("no APPENDLIMIT=<n> capability (RFC 7889; delivery.max_message_size is 1MiB here): %v", caps)
	}
	if limit != 1<<20 {
		t.Errorf("APPENDLIMIT=%d, want %d (delivery.max_message_size)", limit, 1<<20)
	}
	ic := dialIMAPS(t, s.addr(s.ports.IMAPS))
	ic.greeting()
	ic.login("size@example.test", "size-secret-1")
	big := int(limit) + 1
	ic.write(fmt.Sprintf("big APPEND INBOX {%d}\r\n", big))
	l := ic.line()
	if strings.HasPrefix(l, "+") { // the server may read and discard the literal first
		ic.write(strings.Repeat("x", big) + "\r\n")
		l = ic.line()
	}
	if !regexp.MustCompile(`^big NO \[TOOBIG\]`).MatchString(l) {
		t.Errorf("APPEND of %d octets with APPENDLIMIT=%d: got %q, want big NO [TOOBIG]", big, limit, l)
	}
	ic.cmd("NOOP").ok()
	ic.cmd("STATUS INBOX (MESSAGES)").ok().has(`MESSAGES 2\)`)
}

// TestIMAPGoClientQuota: GETQUOTAROOT reports the user's quota as STORAGE in KiB (RFC 9208 5.1) and its usage.
func TestIMAPGoClientQuota(t *testing.T) {
	s := newIMAPServer(t, serverOptions{})
	if out, err := s.runErr("quota-secret-1\n", "user", "add", "quota@example.test", "--password-stdin",
		"--quota", "10MiB"); err != nil {
		t.Fatalf("user add --quota: %v\n%s", err, out)
	}
	c := goIMAP(t, s, "quota@example.test", "quota-secret-1", nil)
	requireCaps(t, c, "QUOTA", "QUOTA=RES-STORAGE")
	msg := testMessage("quota", strings.Repeat("q", 5000))
	goAppend(t, c, "INBOX", msg)
	roots, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil {
		t.Fatalf("GETQUOTAROOT INBOX: %v", err)
	}
	if len(roots) != 1 {
		t.Fatalf("GETQUOTAROOT INBOX: %d roots, want 1: %+v", len(roots), roots)
	}
	st, ok := roots[0].Resources[imap.QuotaResourceStorage]
	if !ok {
		t.Fatalf("quota root %q has no STORAGE: %+v", roots[0].Root, roots[0])
	}
	if st.Limit != 10*1024 {
		t.Errorf("STORAGE limit %d KiB, want %d", st.Limit, 10*1024)
	}
	if kib := int64(len(msg)) / 1024; st.Usage < kib || st.Usage > kib+1 {
		t.Errorf("STORAGE usage %d KiB after one %d-octet message, want about %d", st.Usage, len(msg), kib)
	}
}

// TestIMAPGoClientNamespace: one personal namespace, prefix "" and delimiter "/" (RFC 2342, issue #3).
func TestIMAPGoClientNamespace(t *testing.T) {
	s := newIMAPServer(t, serverOptions{})
	s.addUser("ns@example.test", "ns-secret-1")
	c := goIMAP(t, s, "ns@example.test", "ns-secret-1", nil)
	requireCaps(t, c, "NAMESPACE")
	ns, err := c.Namespace().Wait()
	if err != nil {
		t.Fatalf("NAMESPACE: %v", err)
	}
	if len(ns.Personal) != 1 || ns.Personal[0].Prefix != "" || ns.Personal[0].Delim != '/' {
		t.Errorf("personal namespace %+v, want ((\"\" \"/\"))", ns.Personal)
	}
	if len(ns.Other) != 0 || len(ns.Shared) != 0 {
		t.Errorf("other %+v / shared %+v namespaces, want NIL NIL", ns.Other, ns.Shared)
	}
}

// TestIMAPGoClientUIDPlusAndMove: APPENDUID, COPYUID on COPY and MOVE (RFC 4315, 6851), UID EXPUNGE of one UID.
func TestIMAPGoClientUIDPlusAndMove(t *testing.T) {
	s := newIMAPServer(t, serverOptions{})
	s.addUser("uid@example.test", "uid-secret-1")
	c := goIMAP(t, s, "uid@example.test", "uid-secret-1", nil)
	requireCaps(t, c, "UIDPLUS", "MOVE")
	var uids []imap.UID
	var validity uint32
	for i := 0; i < 4; i++ {
		d := goAppend(t, c, "INBOX", testMessage(fmt.Sprintf("m%d", i), "x"))
		if d.UID == 0 || d.UIDValidity == 0 {
			t.Fatalf("APPEND %d: no APPENDUID: %+v", i, d)
		}
		if i > 0 && (d.UID <= uids[i-1] || d.UIDValidity != validity) {
			t.Fatalf("APPENDUID %+v after UID %d / UIDVALIDITY %d: UIDs must grow, UIDVALIDITY stay", d, uids[i-1], validity)
		}
		uids, validity = append(uids, d.UID), d.UIDValidity
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 4 || sel.UIDValidity != validity {
		t.Fatalf("SELECT INBOX: %+v, %v; want 4 messages, UIDVALIDITY %d", sel, err, validity)
	}
	cp, err := c.Copy(imap.UIDSetNum(uids[0]), "Drafts").Wait()
	if err != nil || cp.UIDValidity == 0 || fmt.Sprint(cp.SourceUIDs) != fmt.Sprint(uids[0]) {
		t.Errorf("UID COPY: %+v, %v; want COPYUID with source %d", cp, err, uids[0])
	}
	mv, err := c.Move(imap.UIDSetNum(uids[1], uids[2]), "Trash").Wait()
	if err != nil {
		t.Fatalf("UID MOVE: %v", err)
	}
	if mv.UIDValidity == 0 || mv.SourceUIDs == nil || mv.DestUIDs == nil {
		t.Errorf("UID MOVE: no COPYUID (RFC 6851 4.3): %+v", mv)
	}
	st, err := c.Status("Trash", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 2 {
		t.Errorf("STATUS Trash after MOVE: %+v, %v; want 2 messages", st, err)
	}
	// INBOX now holds uids[0] and uids[3]; delete both, UID EXPUNGE only uids[3].
	if err := c.Store(imap.UIDSetNum(uids[0], uids[3]), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	exp, err := c.UIDExpunge(imap.UIDSetNum(uids[3])).Collect()
	if err != nil || len(exp) != 1 || exp[0] != 2 {
		t.Errorf("UID EXPUNGE %d: expunged %v, %v; want sequence number 2", uids[3], exp, err)
	}
	left, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil || len(left) != 1 || left[0].UID != uids[0] {
		t.Errorf("after UID EXPUNGE: %+v, %v; want only UID %d (still \\Deleted)", left, err, uids[0])
	}
}

// TestIMAPGoClientESearch: SEARCH RETURN (MIN MAX COUNT ALL) answers with ESEARCH (RFC 4731, RFC 9051 6.4.4).
func TestIMAPGoClientESearch(t *testing.T) {
	s := newIMAPServer(t, serverOptions{})
	s.addUser("es@example.test", "es-secret-1")
	c := goIMAP(t, s, "es@example.test", "es-secret-1", nil)
	requireCaps(t, c, "ESEARCH", "SEARCHRES")
	for i := 0; i < 6; i++ {
		var flags []imap.Flag
		if i%2 == 1 {
			flags = append(flags, imap.FlagFlagged)
		}
		goAppend(t, c, "INBOX", testMessage(fmt.Sprintf("es %d", i), "x"), flags...)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	d, err := c.Search(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}},
		&imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true, ReturnAll: true}).Wait()
	if err != nil {
		t.Fatalf("SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED: %v", err)
	}
	if d.Min != 2 || d.Max != 6 || d.Count != 3 || fmt.Sprint(d.AllSeqNums()) != "[2 4 6]" {
		t.Errorf("ESEARCH: min %d max %d count %d all %v; want 2 6 3 [2 4 6]", d.Min, d.Max, d.Count, d.AllSeqNums())
	}
	ud, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}},
		&imap.SearchOptions{ReturnCount: true}).Wait()
	if err != nil || ud.Count != 3 {
		t.Errorf("UID SEARCH RETURN (COUNT): %+v, %v; want COUNT 3", ud, err)
	}
}

var modseqRe = regexp.MustCompile(`MODSEQ \((\d+)\)`)

// TestIMAPGoClientCondstoreQresync: HIGHESTMODSEQ on SELECT, MODSEQ rising with each change, FETCH CHANGEDSINCE,
// STORE UNCHANGEDSINCE answered with [MODIFIED] (RFC 7162 3.1), and a QRESYNC SELECT reporting VANISHED
// (EARLIER) and the changed flags (RFC 7162 3.2.5).
func TestIMAPGoClientCondstoreQresync(t *testing.T) {
	s := newIMAPServer(t, serverOptions{})
	s.addUser("cs@example.test", "cs-secret-1")
	c := goIMAP(t, s, "cs@example.test", "cs-secret-1", nil)
	requireCaps(t, c, "CONDSTORE", "QRESYNC", "ENABLE")
	for i := 0; i < 3; i++ {
		goAppend(t, c, "INBOX", testMessage(fmt.Sprintf("cs %d", i), "x"))
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil || sel.HighestModSeq == 0 {
		t.Fatalf("SELECT INBOX (CONDSTORE): %+v, %v; want HIGHESTMODSEQ", sel, err)
	}
	before := sel.HighestModSeq
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	changed, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true, Flags: true, ModSeq: true,
		ChangedSince: before}).Collect()
	if err != nil || len(changed) != 1 || changed[0].SeqNum != 2 || changed[0].ModSeq <= before {
		t.Fatalf("FETCH 1:3 (FLAGS) (CHANGEDSINCE %d): %+v, %v; want only message 2 with a higher MODSEQ", before, changed, err)
	}
	mod2 := changed[0].ModSeq

	ic := dialIMAPS(t, s.addr(s.ports.IMAPS))
	ic.greeting()
	ic.login("cs@example.test", "cs-secret-1")
	ic.cmd("ENABLE QRESYNC").ok().has(`^\* ENABLED .*QRESYNC`)
	r := ic.cmd("SELECT INBOX").ok()
	validity := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(strings.Join(r.untagged, "\n"))
	hms := regexp.MustCompile(`HIGHESTMODSEQ (\d+)`).FindStringSubmatch(strings.Join(r.untagged, "\n"))
	if validity == nil || hms == nil {
		t.Fatalf("SELECT with QRESYNC enabled lacks UIDVALIDITY or HIGHESTMODSEQ: %q", r.untagged)
	}
	// Message 2 changed at mod2; a STORE UNCHANGEDSINCE an older modseq must fail for it and work for message 1.
	r = ic.cmd(fmt.Sprintf(`STORE 1:2 (UNCHANGEDSINCE %d) +FLAGS (\Flagged)`, mod2-1)).ok()
	if !regexp.MustCompile(`\[MODIFIED 2\]`).MatchString(r.tagged) {
		t.Errorf("STORE UNCHANGEDSINCE: tagged %q, want OK [MODIFIED 2] (untagged %q)", r.tagged, r.untagged)
	}
	r.has(`^\* 1 FETCH \(.*MODSEQ \(\d+\)`)
	ic.cmd("UNSELECT").ok()

	// Expunge message 3 and flag message 1 from the go-imap session, then resync.
	if err := c.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagAnswered}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	r = ic.cmd(fmt.Sprintf("SELECT INBOX (QRESYNC (%s %s))", validity[1], hms[1])).ok()
	r.has(`^\* VANISHED \(EARLIER\) \d+`)
	line := r.has(`^\* 1 FETCH \(.*\\Answered`)
	if m := modseqRe.FindStringSubmatch(line); m == nil {
		t.Errorf("QRESYNC FETCH %q lacks MODSEQ", line)
	}
}

// TestIMAPGoClientConcurrentSessions: what one session does, another session on the same mailbox learns as
// untagged EXISTS, FETCH and EXPUNGE (RFC 9051 5.2, 7.4.1, 7.5.1).
func TestIMAPGoClientConcurrentSessions(t *testing.T) {
	s := newIMAPServer(t, serverOptions{})
	s.addUser("cc@example.test", "cc-secret-1")
	exists := make(chan uint32, 16)
	expunged := make(chan uint32, 16)
	fetched := make(chan string, 16)
	h := &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
		Expunge: func(seq uint32) { expunged <- seq },
		Fetch: func(m *imapclient.FetchMessageData) {
			b, _ := m.Collect()
			if b != nil {
				fetched <- fmt.Sprint(b.SeqNum, b.Flags)
			}
		},
	}
	a := goIMAP(t, s, "cc@example.test", "cc-secret-1", nil)
	b := goIMAP(t, s, "cc@example.test", "cc-secret-1", h)
	goAppend(t, a, "INBOX", testMessage("first", "x"))
	for _, c := range []*imapclient.Client{a, b} {
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(what string, ch any) any {
		t.Helper()
		if err := b.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		switch ch := ch.(type) {
		case chan uint32:
			select {
			case v := <-ch:
				return v
			case <-time.After(10 * time.Second):
			}
		case chan string:
			select {
			case v := <-ch:
				return v
			case <-time.After(10 * time.Second):
			}
		}
		t.Fatalf("session B got no %s after NOOP", what)
		return nil
	}
	goAppend(t, a, "INBOX", testMessage("second", "y"))
	if n := wait("EXISTS", exists); n != uint32(2) {
		t.Errorf("B: %v EXISTS, want 2", n)
	}
	if err := a.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{imap.FlagFlagged, imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if f := wait("FETCH", fetched).(string); !strings.HasPrefix(f, "1 ") || !strings.Contains(f, `\Flagged`) {
		t.Errorf("B: FETCH %s, want message 1 with \\Flagged", f)
	}
	if err := a.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if n := wait("EXPUNGE", expunged); n != uint32(1) {
		t.Errorf("B: EXPUNGE %v, want 1", n)
	}
	// A delivery over SMTP is seen too.
	smtpDeliver(t, s, "sender@remote.example", "cc@example.test", testMessage("by smtp", "z"))
	if n := wait("EXISTS after an SMTP delivery", exists); n != uint32(2) {
		t.Errorf("B: %v EXISTS after the delivery, want 2", n)
	}
}

// TestIMAPIdleWokenBySMTP: a message delivered over SMTP reaches an IDLE session (RFC 2177) as EXISTS.
func TestIMAPIdleWokenBySMTP(t *testing.T) {
	s := newIMAPServer(t, serverOptions{})
	s.addUser("idle@example.test", "idle-secret-1")
	exists := make(chan uint32, 4)
	c := goIMAP(t, s, "idle@example.test", "idle-secret-1", &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	})
	requireCaps(t, c, "IDLE")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	smtpDeliver(t, s, "sender@remote.example", "idle@example.test", testMessage("wake up", "hello"))
	select {
	case n := <-exists:
		if n != 1 {
			t.Errorf("IDLE got %d EXISTS, want 1", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no EXISTS reached the IDLE session within 30s of the SMTP 250")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE ended with %v, want OK", err)
	}
	// The same over a raw connection: the EXISTS arrives while the client only waits.
	ic := dialIMAP(t, s.addr(s.ports.IMAP))
	ic.greeting()
	ic.starttls()
	ic.login("idle@example.test", "idle-secret-1")
	ic.cmd("SELECT INBOX").ok()
	ic.write("idle IDLE\r\n")
	if l := ic.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: got %q, want a continuation request", l)
	}
	smtpDeliver(t, s, "sender@remote.example", "idle@example.test", testMessage("again", "hello"))
	for {
		l, err := ic.readLine(30 * time.Second)
		if err != nil {
			t.Fatalf("raw IDLE: no EXISTS within 30s of the SMTP 250: %v", err)
		}
		if l == "* 2 EXISTS" {
			break
		}
		if !strings.HasPrefix(l, "* ") {
			t.Fatalf("raw IDLE: unexpected %q", l)
		}
	}
	ic.write("DONE\r\n")
	ic.readUntilTagged("idle", "IDLE").ok()
}
