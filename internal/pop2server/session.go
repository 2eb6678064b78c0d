package pop2server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/postern/postern/internal/auth"
	"github.com/postern/postern/internal/connserver"
	"github.com/postern/postern/internal/store"
)

// maxCommandLine bounds a command line including CRLF. RFC 937 sets no limit; HELO with an address and a
// password is the longest command, and UW ipop2d reads lines of up to 1 KiB.
const maxCommandLine = 1024

// errCloseSession ends a session after its reply was written.
var errCloseSession = errors.New("close session")

// state is the RFC 937 session state (named as in ipop2d).
type state int

const (
	stateAuth state = iota // before HELO
	stateMbox              // a folder is selected, no message is
	stateItem              // READ selected a message that exists: RETR may follow
	stateNext              // RETR sent it: ACKS, ACKD or NACK must follow
)

// message is one message of the snapshot taken at HELO.
type message struct {
	uid     uint32
	size    int64
	blobID  string
	seen    bool // \Seen at login
	acked   bool // ACKS or ACKD: marked \Seen at QUIT
	deleted bool // ACKD: expunged at QUIT
}

// session is one POP2 connection.
type session struct {
	connserver.IdleClock // lets a full server end the session idle the longest (connserver.Idler)

	srv  *Server
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	ip   netip.Addr
	log  *slog.Logger
	ctx  context.Context

	mu sync.Mutex // guards the idle clock against Shutdown

	state    state
	mailbox  store.Mailbox
	msgs     []message
	current  int // 1-based message number READ, RETR and the ACKs work on
	unlock   func()
	commands int
	errors   int
}

func newSession(s *Server, c net.Conn, ip netip.Addr) *session {
	id := s.nextID.Add(1)
	sess := &session{srv: s, conn: c, ip: ip, ctx: s.ctx, log: s.log.With("conn", id, "remote", ip.String()),
		br: bufio.NewReaderSize(c, 4096), bw: bufio.NewWriterSize(deadlineWriter{c, s.opts.Timeout}, 32<<10)}
	sess.Wait()
	return sess
}

// deadlineWriter renews the write deadline before each write.
type deadlineWriter struct {
	c       net.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.c.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.c.Write(p)
}

func (c *session) opts() *Options { return &c.srv.opts }

// InterruptIfIdle makes a session that waits for a command see the shutdown at once.
func (c *session) InterruptIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.IdleSince().IsZero() { // waiting for a command, not running one
		c.conn.SetReadDeadline(time.Now())
	}
}

// Close ends the connection whatever the session is doing (the Shutdown deadline).
func (c *session) Close() { c.conn.Close() }

// setBusy marks a command as running (Shutdown lets it finish) or the session as waiting for the next one; the
// IdleClock is the one record of it, changed under mu so InterruptIfIdle never cuts a running command.
func (c *session) setBusy(v bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v {
		c.Work()
	} else {
		c.Wait()
	}
}

func (c *session) reply(line string) { c.bw.WriteString(line + "\r\n") }

// Serve runs the session; a panic is logged and ends only this connection.
func (c *session) Serve() {
	defer c.conn.Close()
	defer func() {
		if c.unlock != nil {
			c.unlock()
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic in POP2 session", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	if !isTLS(c.conn) && !c.opts().AllowPlaintextAuth {
		// Refuse before the client can send its password in the clear (see the package doc).
		c.log.Info("POP2 session refused: not TLS-protected and auth.allow_plaintext is false")
		c.reply("- POP2 unavailable: this server does not accept passwords over unencrypted connections")
		c.bw.Flush()
		return
	}
	c.reply("+ POP2 " + c.opts().Hostname + " Postern server ready")
	for {
		line, err := c.readCommand()
		if err != nil {
			c.readFailed(err)
			return
		}
		if err := c.dispatch(line); err != nil {
			c.bw.Flush()
			return
		}
		if c.srv.conns.Closing() {
			c.reply("- Server shutting down")
			c.bw.Flush()
			return
		}
	}
}

func (c *session) readFailed(err error) {
	var ne net.Error
	switch {
	case c.srv.conns.Closing():
		c.reply("- Server shutting down")
	case errors.As(err, &ne) && ne.Timeout():
		c.reply("- Autologout; idle for too long")
	default:
		return
	}
	c.bw.Flush()
}

// readCommand flushes pending replies when nothing more is pipelined, then reads one line; an over-long line is
// answered and the session goes on.
func (c *session) readCommand() (string, error) {
	for {
		if c.br.Buffered() == 0 {
			if err := c.bw.Flush(); err != nil {
				return "", err
			}
		}
		c.mu.Lock()
		if c.srv.conns.Closing() {
			c.mu.Unlock()
			return "", ErrServerClosed
		}
		c.conn.SetReadDeadline(time.Now().Add(c.opts().Timeout))
		c.mu.Unlock()
		line, tooLong, err := readLine(c.br, maxCommandLine)
		if err != nil {
			return "", err
		}
		if !tooLong {
			return line, nil
		}
		if err := c.fail("Command line too long"); err != nil {
			return "", err
		}
	}
}

// readLine reads through the next LF; it returns the line without CRLF and whether it exceeded max octets.
func readLine(br *bufio.Reader, max int) (string, bool, error) {
	var buf []byte
	tooLong := false
	for {
		frag, err := br.ReadSlice('\n')
		if !tooLong {
			buf = append(buf, frag...)
			if len(buf) > max {
				tooLong, buf = true, nil
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", false, err
		}
		return strings.TrimSuffix(strings.TrimSuffix(string(buf), "\n"), "\r"), tooLong, nil
	}
}

// fail answers a client error with "-" and counts it; the error closes the session when the budget is spent.
func (c *session) fail(text string) error {
	c.reply("- " + text)
	c.errors++
	if c.errors >= c.opts().MaxErrors {
		c.reply("- Too many errors, closing connection")
		return errCloseSession
	}
	return nil
}

// dispatch runs one command. A non-nil error closes the session.
func (c *session) dispatch(line string) error {
	c.commands++
	if c.commands > c.opts().MaxCommands+3*len(c.msgs) {
		c.reply("- Too many commands, closing connection")
		return errCloseSession
	}
	cmd, err := parseCommand(line)
	if err != nil {
		return c.fail("Syntax error: " + err.Error())
	}
	c.setBusy(true)
	defer c.setBusy(false)
	states, known := allowedStates(cmd.verb)
	switch {
	case !known:
		return c.fail("Unknown command")
	case !containsState(states, c.state):
		return c.fail("Command out of sequence")
	}
	switch cmd.verb {
	case "HELO":
		return c.cmdHelo(cmd)
	case "FOLD":
		return c.cmdFold(cmd)
	case "READ":
		return c.cmdRead(cmd)
	case "RETR":
		return c.cmdRetr(cmd)
	case "ACKS", "ACKD", "NACK":
		return c.cmdAck(cmd)
	}
	return c.cmdQuit(cmd)
}

// allowedStates is ipop2d's state table; QUIT is accepted everywhere (a message not ACKed is simply kept).
func allowedStates(verb string) ([]state, bool) {
	switch verb {
	case "HELO":
		return []state{stateAuth}, true
	case "FOLD", "READ":
		return []state{stateMbox, stateItem}, true
	case "RETR":
		return []state{stateItem}, true
	case "ACKS", "ACKD", "NACK":
		return []state{stateNext}, true
	case "QUIT":
		return []state{stateAuth, stateMbox, stateItem, stateNext}, true
	}
	return nil, false
}

func containsState(states []state, s state) bool {
	for _, x := range states {
		if x == s {
			return true
		}
	}
	return false
}

// cmdHelo logs in and selects INBOX. A failed login ends the connection (RFC 937; the shared lockout counts it).
func (c *session) cmdHelo(cmd command) error {
	if cmd.user == "" || cmd.password == "" {
		c.reply("- Missing user or password")
		return errCloseSession
	}
	u, err := c.opts().Auth.Authenticate(c.ctx, c.ip, cmd.user, cmd.password)
	switch {
	case errors.Is(err, auth.ErrLockedOut):
		c.reply("- Too many failed logins from your address, try again later")
		return errCloseSession
	case errors.Is(err, auth.ErrInvalidCredentials):
		c.reply("- Bad login")
		return errCloseSession
	case err != nil:
		c.log.Error("authentication", "err", err)
		c.reply("- Authentication temporarily unavailable")
		return errCloseSession
	}
	c.log = c.log.With("user", u.Address)
	if err := c.openDrop(u); err != nil {
		return err
	}
	c.log.Info("logged in", "messages", len(c.msgs))
	return c.selectInbox()
}

// openDrop locks and snapshots the user's INBOX.
func (c *session) openDrop(u store.User) error {
	mb, err := c.opts().Store.GetMailbox(c.ctx, u.ID, "INBOX")
	if err != nil {
		c.log.Error("open maildrop", "err", err)
		c.reply("- Unable to open maildrop, try again later")
		return errCloseSession
	}
	unlock, ok := c.opts().Locks.TryLock(mb.ID)
	if !ok {
		c.reply("- Maildrop already locked by another session")
		return errCloseSession
	}
	msgs, err := c.opts().Store.Messages(c.ctx, store.MessageQuery{MailboxID: mb.ID})
	if err != nil {
		unlock()
		c.log.Error("read maildrop", "err", err)
		c.reply("- Unable to read maildrop, try again later")
		return errCloseSession
	}
	c.mailbox, c.unlock = mb, unlock
	c.msgs = make([]message, len(msgs))
	for i, m := range msgs {
		seen := false
		for _, f := range m.Flags {
			seen = seen || strings.EqualFold(f, `\Seen`)
		}
		c.msgs[i] = message{uid: m.UID, size: m.Size, blobID: m.BlobID, seen: seen}
	}
	return nil
}

func (c *session) selectInbox() error {
	c.state, c.current = stateMbox, 1
	c.reply(fmt.Sprintf("#%d messages in INBOX", len(c.msgs)))
	return nil
}

// cmdFold selects a folder; only INBOX exists over POP2.
func (c *session) cmdFold(cmd command) error {
	if !strings.EqualFold(cmd.arg, "INBOX") {
		return c.fail("Only INBOX is available over POP2")
	}
	return c.selectInbox()
}

// cmdRead selects message n (or the current one) and announces its size; "=0" when there is none.
func (c *session) cmdRead(cmd command) error {
	if cmd.arg != "" {
		n, ok := parseNumber(cmd.arg)
		if !ok {
			return c.fail("Invalid message number")
		}
		c.current = n
	}
	c.announce()
	return nil
}

// announce answers "=ccc" for the current message and sets the state accordingly.
func (c *session) announce() {
	switch {
	case c.current < 1 || c.current > len(c.msgs):
		c.state = stateMbox
		c.reply("=0 No more messages")
	case c.msgs[c.current-1].deleted:
		c.state = stateMbox
		c.reply(fmt.Sprintf("=0 Message %d deleted", c.current))
	default:
		c.state = stateItem
		c.reply(fmt.Sprintf("=%d characters in message %d", c.msgs[c.current-1].size, c.current))
	}
}

// cmdRetr sends exactly the announced octets of the stored message. RFC 937 has no error reply for RETR (the
// client counts octets), so a message that cannot be read ends the connection; nothing was ACKed, so nothing is
// lost.
func (c *session) cmdRetr(cmd command) error {
	if cmd.arg != "" {
		return c.fail("RETR takes no argument")
	}
	m := &c.msgs[c.current-1]
	rc, err := c.opts().Blobs.Open(c.ctx, m.blobID)
	if err != nil {
		c.log.Warn("open message", "uid", m.uid, "err", err)
		return errCloseSession
	}
	defer rc.Close()
	if n, err := io.CopyN(c.bw, rc, m.size); err != nil {
		c.log.Warn("sending message", "uid", m.uid, "sent", n, "size", m.size, "err", err)
		return errCloseSession
	}
	c.state = stateNext
	return nil
}

// cmdAck ends a message transfer: ACKS keeps the message, ACKD deletes it at QUIT, NACK asks for it again.
func (c *session) cmdAck(cmd command) error {
	if cmd.arg != "" {
		return c.fail(cmd.verb + " takes no argument")
	}
	if cmd.verb != "NACK" {
		m := &c.msgs[c.current-1]
		m.acked = true
		m.deleted = cmd.verb == "ACKD"
		c.current++
	}
	c.announce()
	return nil
}

// cmdQuit applies the session's changes: \Seen on ACKed messages, then one expunge of the ACKD ones, both
// durable before "+".
func (c *session) cmdQuit(cmd command) error {
	if cmd.arg != "" {
		return c.fail("QUIT takes no argument")
	}
	var deleted, seen store.UIDSet
	for _, m := range c.msgs {
		switch {
		case m.deleted:
			deleted = append(deleted, store.UIDRange{Start: m.uid, Stop: m.uid})
		case m.acked && !m.seen:
			seen = append(seen, store.UIDRange{Start: m.uid, Stop: m.uid})
		}
	}
	if len(seen) > 0 {
		if _, err := c.opts().Store.StoreFlags(c.ctx, store.StoreFlagsRequest{MailboxID: c.mailbox.ID, UIDs: seen,
			Op: store.FlagsAdd, Flags: []string{`\Seen`}}); err != nil {
			c.log.Error("update: mark seen", "err", err)
			c.reply("- Unable to update maildrop; no message deleted")
			return errCloseSession
		}
	}
	if len(deleted) > 0 {
		res, err := c.opts().Store.Expunge(c.ctx, store.ExpungeRequest{MailboxID: c.mailbox.ID, UIDs: deleted})
		if err != nil {
			c.log.Error("update: expunge", "err", err)
			c.reply("- Some deleted messages not removed")
			return errCloseSession
		}
		c.log.Info("expunged", "count", len(res.UIDs))
	}
	c.reply("+ Postern POP2 server signing off")
	return errCloseSession
}
