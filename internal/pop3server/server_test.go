package pop3server

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdg-go/scram"

	"github.com/postern/postern/internal/auth"
	"github.com/postern/postern/internal/store/storefake"
)

const msg1 = "From: a@example.net\r\nSubject: one\r\n\r\nHello\r\n.dotted line\r\n..two dots\r\nbye\r\n"
const msg2 = "From: b@example.net\r\nSubject: two\r\n\r\nline 1\r\nline 2\r\nline 3\r\n"

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func capaOf(c *client) []string { return c.cmd("CAPA").multi() }

func TestCapabilities(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	base := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER", "IMPLEMENTATION Postern"}

	c := f.dial(t)
	if got, want := capaOf(c), append(slices.Clone(base), "STLS"); !slices.Equal(got, want) {
		t.Errorf("CAPA before TLS = %q, want %q (no USER or SASL before TLS)", got, want)
	}
	c.stls()
	if got, want := capaOf(c), append(slices.Clone(base), "USER", "SASL PLAIN LOGIN"); !slices.Equal(got, want) {
		t.Errorf("CAPA after STLS = %q, want %q", got, want)
	}
	c.login("alice@example.org")
	if got := capaOf(c); !slices.Equal(got, base) {
		t.Errorf("CAPA in TRANSACTION = %q, want %q", got, base)
	}

	c = f.dialTLS(t)
	if got, want := capaOf(c), append(slices.Clone(base), "USER", "SASL PLAIN LOGIN"); !slices.Equal(got, want) {
		t.Errorf("CAPA on implicit TLS = %q, want %q", got, want)
	}

	fp := newFixture(t, func(o *Options) { o.AllowPlaintextAuth = true })
	if got, want := capaOf(fp.dial(t)), append(slices.Clone(base), "STLS", "USER", "SASL PLAIN LOGIN"); !slices.Equal(got, want) {
		t.Errorf("CAPA with plaintext allowed = %q, want %q", got, want)
	}
}

func TestPlaintextRefusedBeforeTLS(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	c := f.dial(t)
	c.cmd("USER alice@example.org").err("[AUTH] Plaintext authentication disallowed")
	c.cmd("PASS secret").err("[AUTH] Plaintext authentication disallowed")
	c.cmd("AUTH PLAIN " + b64("\x00alice@example.org\x00secret")).err("[AUTH] Plaintext")
	c.cmd("AUTH").err("[AUTH] Plaintext")
	c.cmd("APOP alice@example.org c4c9334bac560ecc979e58001b3e22fb").err("APOP is not supported")
	c.cmd("STAT").err("not valid in this state")
	// After STLS the same session may log in.
	c.stls().login("alice@example.org")
	c.cmd("STAT").ok()
}

func TestTransactionTranscript(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	u1 := f.store.Deliver(alice, msg1)
	u2 := f.store.Deliver(alice, msg2, `\Seen`)
	u3 := f.store.Deliver(alice, msg1)
	c := f.dialTLS(t)
	if got := c.cmd("USER alice@example.org").ok(); got == "" {
		t.Error("USER reply has no text")
	}
	if got, want := c.cmd("PASS secret").ok(), fmt.Sprintf("maildrop has 3 messages (%d octets)", 2*len(msg1)+len(msg2)); got != want {
		t.Errorf("PASS = %q, want %q", got, want)
	}
	total := 2*len(msg1) + len(msg2)
	if got, want := c.cmd("STAT").ok(), fmt.Sprintf("3 %d", total); got != want {
		t.Errorf("STAT = %q, want %q", got, want)
	}
	wantList := []string{fmt.Sprintf("1 %d", len(msg1)), fmt.Sprintf("2 %d", len(msg2)), fmt.Sprintf("3 %d", len(msg1))}
	if got := c.cmd("LIST").multi(); !slices.Equal(got, wantList) {
		t.Errorf("LIST = %q, want %q", got, wantList)
	}
	if got, want := c.cmd("LIST 2").ok(), wantList[1]; got != want {
		t.Errorf("LIST 2 = %q, want %q", got, want)
	}
	wantUIDL := []string{"1 000000016553F100", "2 000000026553F100", "3 000000036553F100"}
	if got := c.cmd("UIDL").multi(); !slices.Equal(got, wantUIDL) {
		t.Errorf("UIDL = %q, want %q", got, wantUIDL)
	}
	if got := c.cmd("UIDL 3").ok(); got != wantUIDL[2] {
		t.Errorf("UIDL 3 = %q", got)
	}
	c.cmd("LIST 4").err("No such message")
	c.cmd("LIST 0").err("No such message")
	c.cmd("LIST x").err("Invalid message number")
	if got := c.cmd("RETR 1").body(); got != msg1 {
		t.Errorf("RETR 1 = %q, want %q", got, msg1)
	}
	if got, want := c.cmd("TOP 2 1").body(), "From: b@example.net\r\nSubject: two\r\n\r\nline 1\r\n"; got != want {
		t.Errorf("TOP 2 1 = %q, want %q", got, want)
	}
	c.cmd("DELE 2").ok()
	c.cmd("DELE 2").err("already deleted")
	c.cmd("RETR 2").err("already deleted")
	c.cmd("TOP 2 0").err("already deleted")
	c.cmd("LIST 2").err("already deleted")
	if got := c.cmd("LIST").multi(); !slices.Equal(got, []string{wantList[0], wantList[2]}) {
		t.Errorf("LIST after DELE = %q", got)
	}
	if got, want := c.cmd("STAT").ok(), fmt.Sprintf("2 %d", 2*len(msg1)); got != want {
		t.Errorf("STAT after DELE = %q, want %q", got, want)
	}
	c.cmd("RSET").ok()
	c.cmd("STAT").ok()
	c.cmd("NOOP").ok()
	c.cmd("DELE 1").ok()
	c.cmd("RETR 3").body()
	if got := c.cmd("QUIT").ok(); !strings.Contains(got, "2 messages left") {
		t.Errorf("QUIT = %q", got)
	}
	if !c.closed() {
		t.Error("connection open after QUIT")
	}
	if got := f.store.UIDs(alice); !slices.Equal(got, []uint32{u2, u3}) {
		t.Errorf("INBOX after QUIT = %v, want %v", got, []uint32{u2, u3})
	}
	if !slices.Contains(f.store.Flags(alice, u3), `\Seen`) {
		t.Error("RETR 3 did not mark message 3 \\Seen")
	}
	if len(f.store.Expunges()) != 1 || f.store.Expunges()[0].RequireDeleted || f.store.Expunges()[0].UIDs.Contains(u2) ||
		!f.store.Expunges()[0].UIDs.Contains(u1) {
		t.Errorf("expunges = %+v, want one of UID %d without RequireDeleted", f.store.Expunges(), u1)
	}
	if n := len(f.store.FlagRequests()); n != 1 || f.store.FlagRequests()[0].UIDs.Contains(u2) {
		t.Errorf("flag requests = %+v: want one for message 3 only (2 was \\Seen already, 1 deleted)", f.store.FlagRequests())
	}
}

func TestTopIsNotSeenAndRsetForgetsRetrieval(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	u1 := f.store.Deliver(alice, msg1)
	u2 := f.store.Deliver(alice, msg2)
	c := f.dialTLS(t).login("alice@example.org")
	c.cmd("TOP 1 0").body()
	c.cmd("RETR 2").body()
	c.cmd("RSET").ok()
	c.cmd("QUIT").ok()
	c.closed()
	if slices.Contains(f.store.Flags(alice, u1), `\Seen`) || slices.Contains(f.store.Flags(alice, u2), `\Seen`) {
		t.Error("TOP or a retrieval undone by RSET marked a message \\Seen")
	}
	if len(f.store.FlagRequests())+len(f.store.Expunges()) != 0 {
		t.Errorf("QUIT with nothing to do called the store: %+v %+v", f.store.FlagRequests(), f.store.Expunges())
	}
}

func TestTop(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.store.Deliver(alice, msg2)
	f.store.Deliver(alice, "Subject: no body")
	f.store.Deliver(alice, "Subject: x\r\n\r\n.a\r\nb\r\n")
	c := f.dialTLS(t).login("alice@example.org")
	for _, tc := range []struct{ cmd, want string }{
		{"TOP 1 0", "From: b@example.net\r\nSubject: two\r\n\r\n"},
		{"TOP 1 2", "From: b@example.net\r\nSubject: two\r\n\r\nline 1\r\nline 2\r\n"},
		{"TOP 1 99", msg2},
		{"TOP 1 4294967295", msg2},
		{"TOP 2 5", "Subject: no body\r\n"},
		{"TOP 3 1", "Subject: x\r\n\r\n.a\r\n"},
	} {
		if got := c.cmd(tc.cmd).body(); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.cmd, got, tc.want)
		}
	}
	c.cmd("TOP 1").err("Syntax")
	c.cmd("TOP 1 -1").err("Invalid number of lines")
	c.cmd("TOP 9 1").err("No such message")
}

// TestRetrSizes: the octets a client keeps after un-stuffing are the stored size for CRLF messages, including
// lines of dots and long lines; bare LF becomes CRLF on the wire.
func TestRetrSizes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	long := strings.Repeat("x", 100000)
	bodies := []string{
		msg1,
		"Subject: dots\r\n\r\n.\r\n..\r\n...\r\n. \r\n",
		"Subject: long\r\n\r\n" + long + "\r\n." + long + "\r\n",
		"Subject: cr\r\n\r\nbare\rcr\r\n",
	}
	for _, b := range bodies {
		f.store.Deliver(alice, b)
	}
	f.store.Deliver(alice, "Subject: lf\n\nbare\nlf\n")
	c := f.dialTLS(t).login("alice@example.org")
	for i, b := range bodies {
		first := c.cmd(fmt.Sprintf("RETR %d", i+1)).line()
		if want := fmt.Sprintf("+OK %d octets", len(b)); first != want {
			t.Errorf("RETR %d: %q, want %q", i+1, first, want)
		}
		var lines []string
		for l := c.line(); l != "."; l = c.line() {
			lines = append(lines, strings.TrimPrefix(l, "."))
		}
		if got := strings.Join(lines, "\r\n") + "\r\n"; got != b {
			t.Errorf("RETR %d: got %d octets %.60q..., want %d", i+1, len(got), got, len(b))
		}
	}
	if got, want := c.cmd("RETR 5").body(), "Subject: lf\r\n\r\nbare\r\nlf\r\n"; got != want {
		t.Errorf("bare-LF message = %q, want %q", got, want)
	}
}

func TestAuthSASL(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.store.Deliver(alice, msg1)

	c := f.dialTLS(t)
	c.cmd("AUTH PLAIN " + b64("\x00alice@example.org\x00secret")).ok()
	c.cmd("STAT").ok()
	c.cmd("QUIT").ok()

	c = f.dialTLS(t)
	if got := c.cmd("AUTH").multi(); !slices.Equal(got, []string{"PLAIN", "LOGIN"}) {
		t.Errorf("AUTH list = %q", got)
	}
	c.cmd("AUTH PLAIN")
	if l := c.line(); l != "+ " {
		t.Errorf("PLAIN without initial response: %q, want %q", l, "+ ")
	}
	c.cmd(b64("\x00alice@example.org\x00wrong")).err("[AUTH] Authentication failed")
	c.cmd("AUTH LOGIN")
	if l := c.line(); l != "+ "+b64("Username:") {
		t.Errorf("LOGIN challenge %q", l)
	}
	c.cmd("*").err("cancelled")
	c.cmd("AUTH CRAM-MD5").err("Unsupported")
	c.cmd("AUTH PLAIN !!!").err("base64")
	c.cmd("AUTH PLAIN = x").err("Syntax")
	c.cmd("AUTH LOGIN " + b64("alice@example.org"))
	if l := c.line(); l != "+ "+b64("Password:") {
		t.Errorf("LOGIN password challenge %q", l)
	}
	c.cmd(b64("secret")).ok()
	if got := c.cmd("LIST").multi(); len(got) != 1 {
		t.Errorf("LIST = %q", got)
	}
}

func TestAuthFailuresCloseAfterThree(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	c := f.dialTLS(t)
	c.cmd("USER alice@example.org").ok()
	c.cmd("PASS wrong").err("[AUTH] Authentication failed")
	c.cmd("PASS secret").err("PASS must follow USER")
	c.cmd("USER nobody@example.org").ok()
	c.cmd("PASS secret").err("[AUTH]")
	c.cmd("AUTH PLAIN " + b64("\x00alice@example.org\x00nope")).err("[AUTH] Authentication failed; too many failures")
	if !c.closed() {
		t.Error("connection open after three failed logins")
	}
}

func TestLockoutIsLoginDelay(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.MaxAuthFailures = 10 })
	c := f.dialTLS(t)
	for range 5 {
		c.cmd("USER alice@example.org").ok()
		c.cmd("PASS wrong").err("[AUTH]")
	}
	c.cmd("USER alice@example.org").ok()
	c.cmd("PASS secret").err("[LOGIN-DELAY]")
}

func TestInUse(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.store.Deliver(alice, msg1)
	first := f.dialTLS(t).login("alice@example.org")
	second := f.dialTLS(t)
	second.cmd("USER alice@example.org").ok()
	second.cmd("PASS secret").err("[IN-USE]")
	second.cmd("STAT").err("not valid in this state")
	f.dialTLS(t).login("bob@example.org") // another maildrop is free
	first.cmd("QUIT").ok()
	first.closed()
	second.login("alice@example.org")
}

// TestSharedLocks: a Locker shared with another server (POP2) excludes sessions across both.
func TestSharedLocks(t *testing.T) {
	t.Parallel()
	locks := NewLocalLocks()
	f := newFixture(t, func(o *Options) { o.Locks = locks })
	mb, _ := f.store.GetMailbox(context.Background(), alice, "INBOX")
	unlock, ok := locks.TryLock(mb.ID)
	if !ok {
		t.Fatal("TryLock on a free mailbox failed")
	}
	c := f.dialTLS(t)
	c.cmd("USER alice@example.org").ok()
	c.cmd("PASS secret").err("[IN-USE]")
	unlock()
	unlock() // idempotent
	c.login("alice@example.org")
}

func TestSnapshotAtLogin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.store.Deliver(alice, msg1)
	c := f.dialTLS(t).login("alice@example.org")
	u2 := f.store.Deliver(alice, msg2)
	c.cmd("DELE 1").ok()
	c.cmd("LIST 2").err("No such message")
	c.cmd("QUIT").ok()
	c.closed()
	if got := f.store.UIDs(alice); !slices.Equal(got, []uint32{u2}) {
		t.Errorf("INBOX = %v: the message delivered during the session must survive its QUIT", got)
	}
	c = f.dialTLS(t).login("alice@example.org")
	if got := c.cmd("UIDL").multi(); !slices.Equal(got, []string{"1 000000026553F100"}) {
		t.Errorf("next session UIDL = %q", got)
	}
}

func TestDroppedConnectionDeletesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.store.Deliver(alice, msg1)
	c := f.dialTLS(t).login("alice@example.org")
	c.cmd("RETR 1").body()
	c.cmd("DELE 1").ok()
	c.c.Close()
	// The lock is released when the session ends; the next login proves it and shows the message.
	for i := 0; ; i++ {
		c = f.dialTLS(t)
		c.cmd("USER alice@example.org").ok()
		c.cmd("PASS secret")
		if l := c.line(); strings.HasPrefix(l, "+OK") {
			break
		} else if !strings.Contains(l, "[IN-USE]") || i > 100 {
			t.Fatalf("login after drop: %q", l)
		}
		c.cmd("QUIT").ok()
		time.Sleep(10 * time.Millisecond)
	}
	if got := c.cmd("STAT").ok(); !strings.HasPrefix(got, "1 ") {
		t.Errorf("STAT = %q", got)
	}
	if len(f.store.Expunges()) != 0 || len(f.store.FlagRequests()) != 0 {
		t.Error("a dropped connection changed the store")
	}
}

func TestUpdateFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.store.Deliver(alice, msg1)
	f.store.Fail(nil, errors.New("disk full"))
	c := f.dialTLS(t).login("alice@example.org")
	c.cmd("DELE 1").ok()
	c.cmd("QUIT").err("[SYS/TEMP] Some deleted messages not removed")
	if !c.closed() {
		t.Error("connection open after QUIT")
	}
	f.store.Fail(errors.New("disk full"), nil)
	f.store.Deliver(alice, msg2)
	c = f.dialTLS(t).login("alice@example.org")
	c.cmd("RETR 2").body()
	c.cmd("DELE 1").ok()
	c.cmd("QUIT").err("[SYS/TEMP] Unable to update maildrop; no message deleted")
	if got := f.store.UIDs(alice); len(got) != 2 {
		t.Errorf("INBOX = %v", got)
	}
}

func TestMessageGoneAndStoreErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.store.Deliver(alice, msg1)
	c := f.dialTLS(t).login("alice@example.org")
	f.store.DropBlobs()
	c.cmd("RETR 1").err("removed by another session")
	c.cmd("NOOP").ok()

	// A user without an INBOX in the store: [SYS/TEMP], still in AUTHORIZATION.
	f.store.RemoveMailbox(bob)
	c = f.dialTLS(t)
	c.cmd("USER bob@example.org").ok()
	c.cmd("PASS secret").err("[SYS/TEMP]")
	c.cmd("QUIT").ok()
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.MaxErrors = 6 })
	c := f.dialTLS(t)
	c.cmd(strings.Repeat("A", 300)).err("too long")
	c.cmd("NOOP").err("not valid in this state") // the session went on after the long line
	c.cmd("FROB").err("Unknown command")
	c.write("USER a\x00b\r\n")
	c.err("Syntax error")
	c.cmd("").err("Syntax error")
	c.cmd("CAPA extra").err("Syntax: CAPA") // sixth error: the reply, then the close notice
	c.err("Too many errors")
	if !c.closed() {
		t.Error("connection open after the error budget was spent")
	}

	c = newFixture(t, nil).dialTLS(t).login("alice@example.org")
	for _, tc := range []struct{ cmd, want string }{
		{"USER x", "already logged in"},
		{"STLS", "already logged in"},
		{"RETR", "Syntax"},
		{"DELE 1 2", "Syntax"},
		{"STAT 1", "Syntax"},
		{"RSET x", "Syntax"},
		{"QUIT now", "Syntax"},
	} {
		c.cmd(tc.cmd).err(tc.want)
	}
}

func TestCommandLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.MaxCommands = 5 })
	f.store.Deliver(alice, msg1)
	c := f.dialTLS(t).login("alice@example.org") // 2 commands; limit 5 + 3 for one message
	for range 6 {
		c.cmd("NOOP").ok()
	}
	c.cmd("NOOP").err("Too many commands")
	if !c.closed() {
		t.Error("connection open after the command limit")
	}
}

func TestPipelining(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.store.Deliver(alice, msg1)
	f.store.Deliver(alice, msg2)
	c := f.dialTLS(t)
	c.write("USER alice@example.org\r\nPASS secret\r\nSTAT\r\nRETR 2\r\nDELE 1\r\nQUIT\r\n")
	c.ok()
	c.ok()
	if got := c.ok(); !strings.HasPrefix(got, "2 ") {
		t.Errorf("STAT = %q", got)
	}
	if got := c.body(); got != msg2 {
		t.Errorf("RETR 2 = %q", got)
	}
	c.ok()
	c.ok()
	if got := f.store.UIDs(alice); len(got) != 1 {
		t.Errorf("INBOX = %v", got)
	}
}

func TestSTLS(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	c := f.dial(t)
	c.write("STLS\r\nCAPA\r\n")
	c.err("pipelined after STLS")
	c.cmd("NOOP").err("not valid in this state") // the pipelined CAPA was discarded, not run
	c2 := f.dialTLS(t)
	c2.cmd("STLS").err("TLS already active")
	c3 := f.dial(t).stls()
	c3.cmd("STLS").err("TLS already active")
	fn := newFixture(t, func(o *Options) { o.TLSConfig = nil })
	fn.dial(t).cmd("STLS").err("not available")
}

func TestAutologoutDeletesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.Timeout = 300 * time.Millisecond })
	f.store.Deliver(alice, msg1)
	c := f.dialTLS(t).login("alice@example.org")
	c.cmd("DELE 1").ok()
	c.err("Autologout")
	if !c.closed() {
		t.Error("connection open after autologout")
	}
	if len(f.store.Expunges()) != 0 {
		t.Error("autologout entered UPDATE")
	}
}

func TestShutdownEndsIdleSessions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.store.Deliver(alice, msg1)
	c := f.dialTLS(t).login("alice@example.org")
	c.cmd("DELE 1").ok()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c.err("[SYS/TEMP] Server shutting down")
	if len(f.store.Expunges()) != 0 {
		t.Error("shutdown deleted messages")
	}
	if err := f.srv.Serve(f.ln); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v", err)
	}
}

func TestMaxConnsPerIP(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.MaxConnsPerIP = 2 })
	f.dial(t)
	f.dial(t)
	nc, err := net.Dial("tcp", f.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &client{t: t, c: nc, br: bufio.NewReader(nc)}
	c.err("[SYS/TEMP] Too many connections")
}

func TestQuitInAuthorization(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	c := f.dial(t)
	c.cmd("quit").ok() // keywords are case-insensitive
	if !c.closed() {
		t.Error("connection open after QUIT")
	}
}

func TestNew(t *testing.T) {
	if _, err := New(Options{Hostname: "x"}); err == nil {
		t.Error("New without Store, Blobs and Auth succeeded")
	}
	s := storefake.New()
	as, _ := auth.New(auth.Options{Users: users{}})
	if _, err := New(Options{Store: s, Blobs: s, Auth: as}); err == nil {
		t.Error("New without hostname succeeded")
	}
}

func TestShutdownDuringSASL(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	c := f.dialTLS(t)
	c.cmd("AUTH PLAIN")
	if l := c.line(); l != "+ " {
		t.Fatalf("got %q", l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Fatalf("a session waiting for a SASL response held up Shutdown: %v", err)
	}
	if !c.closed() {
		t.Error("connection open after Shutdown")
	}
}

// TestAuthSCRAMPlus: the mechanisms come from the auth service per connection, so SCRAM-SHA-256-PLUS (RFC 5802,
// RFC 7677) binds to this TLS connection (tls-exporter, RFC 9266) and is offered only over TLS.
func TestAuthSCRAMPlus(t *testing.T) {
	t.Parallel()
	hash, err := auth.HashPasswordOptions("pencil", auth.HashOptions{SCRAMIterations: 4096})
	if err != nil {
		t.Fatal(err)
	}
	as, err := auth.New(auth.Options{Users: users{"ann@example.org": {ID: alice, Address: "ann@example.org", PasswordHash: hash}},
		FailureDelay: -1, SCRAM: true})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(o *Options) { o.Auth = as; o.AllowPlaintextAuth = true })
	f.store.Deliver(alice, msg1)
	if caps := capaOf(f.dial(t)); !slices.Contains(caps, "SASL SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN") {
		t.Errorf("CAPA without TLS = %q: want SCRAM without -PLUS", caps)
	}
	c := f.dialTLS(t)
	if caps := capaOf(c); !slices.Contains(caps, "SASL SCRAM-SHA-256-PLUS SCRAM-SHA-1-PLUS SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN") {
		t.Errorf("CAPA over TLS = %q", caps)
	}
	cs := c.c.(*tls.Conn).ConnectionState()
	ekm, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", []byte{}, 32)
	if err != nil {
		t.Fatal(err)
	}
	client, _ := scram.SHA256.NewClient("ann@example.org", "pencil", "")
	conv := client.NewConversationWithChannelBinding(scram.ChannelBinding{Type: scram.ChannelBindingTLSExporter, Data: ekm})
	first, _ := conv.Step("")
	c.cmd("AUTH SCRAM-SHA-256-PLUS " + b64(first))
	for {
		l := c.line()
		if strings.HasPrefix(l, "+OK") {
			break
		}
		if !strings.HasPrefix(l, "+ ") {
			t.Fatalf("SCRAM exchange: %q", l)
		}
		challenge, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(l, "+ "))
		resp, err := conv.Step(string(challenge))
		if err != nil {
			t.Fatalf("client step: %v", err)
		}
		c.cmd(b64(resp))
	}
	if !conv.Valid() {
		t.Error("server signature not verified")
	}
	if got := c.cmd("STAT").ok(); !strings.HasPrefix(got, "1 ") {
		t.Errorf("STAT = %q", got)
	}
}
