package pop3server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/postern/postern/internal/connserver"
	"github.com/postern/postern/internal/store"
)

// errCloseSession ends a session after its reply was written.
var errCloseSession = errors.New("close session")

// Response codes (RFC 2449 8, RFC 3206).
const (
	codeAuth    = "[AUTH] "
	codeInUse   = "[IN-USE] "
	codeDelay   = "[LOGIN-DELAY] "
	codeSysTemp = "[SYS/TEMP] "
)

// session is one POP3 connection.
type session struct {
	connserver.IdleClock // lets a full server end the session idle the longest (connserver.Idler)

	srv *Server
	br  *bufio.Reader
	bw  *bufio.Writer
	ip  netip.Addr
	log *slog.Logger
	ctx context.Context

	mu   sync.Mutex // guards conn (replaced by STLS) and the idle clock against Shutdown
	conn net.Conn

	tls          bool
	userArg      string // the name given by USER; "" when PASS may not follow
	drop         *maildrop
	unlock       func() // releases the maildrop lock
	commands     int
	errors       int
	authFailures int
}

func newSession(s *Server, c net.Conn, ip netip.Addr) *session {
	id := s.nextID.Add(1)
	sess := &session{srv: s, conn: c, ip: ip, ctx: s.ctx, log: s.log.With("conn", id, "remote", ip.String())}
	_, sess.tls = c.(*tls.Conn)
	sess.br = bufio.NewReaderSize(c, 4096)
	sess.bw = bufio.NewWriterSize(deadlineWriter{sess}, 32<<10)
	sess.Wait()
	return sess
}

func (c *session) opts() *Options { return &c.srv.opts }

// deadlineWriter renews the write deadline before each write, so a long RETR to a slow client is bounded per
// write rather than as a whole.
type deadlineWriter struct{ s *session }

func (w deadlineWriter) Write(p []byte) (int, error) {
	c := w.s.netConn()
	c.SetWriteDeadline(time.Now().Add(w.s.opts().Timeout))
	return c.Write(p)
}

func (c *session) netConn() net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

func (c *session) Close() { c.netConn().Close() }

// InterruptIfIdle makes a session that waits for a command see the shutdown at once.
func (c *session) InterruptIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.IdleSince().IsZero() { // waiting for a command, not running one
		c.conn.SetReadDeadline(time.Now())
	}
}

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

// Serve runs the session; a panic is logged and ends only this connection. The maildrop lock is released
// whatever happens; pending deletions are applied only by QUIT.
func (c *session) Serve() {
	defer func() { c.Close() }()
	defer c.releaseDrop()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic in POP3 session", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	c.log.Debug("connected", "tls", c.tls)
	c.ok(c.opts().Hostname + " Postern POP3 server ready")
	for {
		line, err := c.readCommand()
		if err != nil {
			c.readFailed(err)
			return
		}
		if err := c.dispatch(line); err != nil {
			c.flush()
			return
		}
		if c.srv.conns.Closing() {
			c.errResp(codeSysTemp + "Server shutting down")
			c.flush()
			return
		}
	}
}

func (c *session) releaseDrop() {
	if c.unlock != nil {
		c.unlock()
		c.unlock = nil
	}
	c.drop = nil
}

// readFailed answers a failed command read: shutdown or autologout (RFC 1939 3: the session ends without
// entering UPDATE, so nothing is deleted); a vanished client gets nothing.
func (c *session) readFailed(err error) {
	var ne net.Error
	switch {
	case c.srv.conns.Closing():
		c.errResp(codeSysTemp + "Server shutting down")
	case errors.As(err, &ne) && ne.Timeout():
		c.errResp("Autologout; idle for too long")
	default:
		return
	}
	c.flush()
}

// readCommand reads one command line. An over-long line is consumed and answered, and the session goes on.
func (c *session) readCommand() (string, error) {
	for {
		line, tooLong, err := c.readLine(maxCommandLine)
		if err != nil {
			return "", err
		}
		if tooLong {
			if c.badCommand("Command line too long (RFC 2449: 255 octets)") {
				return "", errCloseSession
			}
			continue
		}
		return line, nil
	}
}

// readLine flushes pending replies when the client has nothing more pipelined (RFC 2449 6.6), then reads one
// line under the inactivity timeout.
func (c *session) readLine(max int) (string, bool, error) {
	if c.br.Buffered() == 0 {
		if err := c.flush(); err != nil {
			return "", false, err
		}
	}
	c.mu.Lock()
	if c.srv.conns.Closing() {
		c.mu.Unlock()
		return "", false, ErrServerClosed
	}
	c.conn.SetReadDeadline(time.Now().Add(c.opts().Timeout))
	c.mu.Unlock()
	return readLine(c.br, max)
}

// readLine reads through the next LF. It returns the line without CRLF and whether it exceeded max octets
// including the line end (the excess is discarded).
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
		s := strings.TrimSuffix(strings.TrimSuffix(string(buf), "\n"), "\r")
		return s, tooLong, nil
	}
}

func (c *session) ok(text string) {
	c.bw.WriteString("+OK")
	if text != "" {
		c.bw.WriteString(" " + text)
	}
	c.bw.WriteString("\r\n")
}

func (c *session) errResp(text string) { c.bw.WriteString("-ERR " + text + "\r\n") }

// multi sends +OK text and the lines of a multi-line response with its termination (RFC 1939 3). The lines
// are protocol data that never start with ".", so they need no stuffing.
func (c *session) multi(text string, lines []string) {
	c.ok(text)
	for _, l := range lines {
		c.bw.WriteString(l + "\r\n")
	}
	c.bw.WriteString(".\r\n")
}

func (c *session) flush() error { return c.bw.Flush() }

// badCommand answers a client error and counts it; it reports whether the session must end.
func (c *session) badCommand(text string) bool {
	c.errResp(text)
	c.errors++
	if c.errors >= c.opts().MaxErrors {
		c.errResp("Too many errors, closing connection")
		return true
	}
	return false
}

// commandLimit grows with the maildrop so that a client may act on every message.
func (c *session) commandLimit() int {
	n := c.opts().MaxCommands
	if c.drop != nil {
		n += 3 * len(c.drop.msgs)
	}
	return n
}

// dispatch runs one command. A non-nil error closes the session.
func (c *session) dispatch(line string) error {
	c.commands++
	if c.commands > c.commandLimit() {
		c.errResp("Too many commands, closing connection")
		return errCloseSession
	}
	cmd, err := parseCommand(line)
	if err != nil {
		return c.fail("Syntax error: " + err.Error())
	}
	c.setBusy(true)
	defer c.setBusy(false)
	if c.drop == nil {
		return c.dispatchAuthorization(cmd)
	}
	return c.dispatchTransaction(cmd)
}

// fail answers a client error; the error closes the session when the error budget is spent.
func (c *session) fail(text string) error {
	if c.badCommand(text) {
		return errCloseSession
	}
	return nil
}

// dispatchAuthorization runs a command of the AUTHORIZATION state (RFC 1939 4).
func (c *session) dispatchAuthorization(cmd command) error {
	switch cmd.verb {
	case "CAPA":
		return c.cmdCapa(cmd)
	case "STLS":
		return c.cmdStls(cmd)
	case "USER":
		return c.cmdUser(cmd)
	case "PASS":
		return c.cmdPass(cmd)
	case "AUTH":
		return c.cmdAuth(cmd)
	case "APOP":
		return c.fail("APOP is not supported; use USER/PASS or AUTH over TLS")
	case "QUIT":
		c.ok("Postern POP3 server signing off")
		return errCloseSession
	case "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL":
		return c.fail("Command not valid in this state: log in first")
	}
	return c.fail("Unknown command")
}

// dispatchTransaction runs a command of the TRANSACTION state (RFC 1939 5).
func (c *session) dispatchTransaction(cmd command) error {
	switch cmd.verb {
	case "CAPA":
		return c.cmdCapa(cmd)
	case "STAT":
		return c.cmdStat(cmd)
	case "LIST":
		return c.cmdList(cmd)
	case "UIDL":
		return c.cmdUidl(cmd)
	case "RETR":
		return c.cmdRetr(cmd)
	case "TOP":
		return c.cmdTop(cmd)
	case "DELE":
		return c.cmdDele(cmd)
	case "RSET":
		return c.cmdRset(cmd)
	case "NOOP":
		if len(cmd.args) != 0 {
			return c.fail("Syntax: NOOP")
		}
		c.ok("")
		return nil
	case "QUIT":
		return c.cmdQuit(cmd)
	case "USER", "PASS", "AUTH", "APOP", "STLS":
		return c.fail("Command not valid in this state: already logged in")
	}
	return c.fail("Unknown command")
}

// capabilities lists CAPA's answer for the current state (RFC 2449 5, 6).
func (c *session) capabilities() []string {
	caps := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER", "IMPLEMENTATION Postern"}
	if c.drop != nil {
		return caps
	}
	if c.opts().TLSConfig != nil && !c.tls {
		caps = append(caps, "STLS")
	}
	if c.authAllowed() {
		caps = append(caps, "USER")
		if mechs := c.opts().Auth.MechanismsFor(c.tlsState()); len(mechs) > 0 {
			caps = append(caps, "SASL "+strings.Join(mechs, " "))
		}
	}
	return caps
}

func (c *session) cmdCapa(cmd command) error {
	if len(cmd.args) != 0 {
		return c.fail("Syntax: CAPA")
	}
	c.multi("Capability list follows", c.capabilities())
	return nil
}

// tlsState returns the state of the session's TLS layer, nil before STLS on 110.
func (c *session) tlsState() *tls.ConnectionState {
	tc, ok := c.netConn().(*tls.Conn)
	if !ok {
		return nil
	}
	cs := tc.ConnectionState()
	return &cs
}

// authAllowed: passwords only over TLS unless the admin allowed plaintext (loopback is not exempt).
func (c *session) authAllowed() bool { return c.tls || c.opts().AllowPlaintextAuth }

// cmdStls upgrades the connection (RFC 2595 4).
func (c *session) cmdStls(cmd command) error {
	switch {
	case len(cmd.args) != 0:
		return c.fail("Syntax: STLS")
	case c.tls:
		return c.fail("TLS already active")
	case c.opts().TLSConfig == nil:
		return c.fail("STLS not available")
	case c.br.Buffered() > 0:
		// CVE-2011-0411 class: commands pipelined after STLS were sent in plaintext and must not run inside TLS.
		c.br.Discard(c.br.Buffered())
		return c.fail("Data pipelined after STLS refused")
	}
	c.ok("Begin TLS negotiation")
	if err := c.flush(); err != nil {
		return err
	}
	tc := tls.Server(c.netConn(), c.opts().TLSConfig)
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.HandshakeContext(c.ctx); err != nil {
		c.log.Info("TLS handshake failed", "err", err)
		return err
	}
	tc.SetDeadline(time.Time{})
	c.mu.Lock()
	c.conn, c.tls = tc, true
	c.mu.Unlock()
	c.br.Reset(tc)
	// RFC 2595 4: the server discards what it learned from the client before TLS.
	c.userArg = ""
	return nil
}

// openDrop locks and snapshots the user's INBOX after a successful login. On failure the session stays in the
// AUTHORIZATION state (RFC 1939 7: "-ERR unable to lock maildrop").
func (c *session) openDrop(u store.User) error {
	mb, err := c.opts().Store.GetMailbox(c.ctx, u.ID, "INBOX")
	if err != nil {
		c.log.Error("open maildrop", "user", u.Address, "err", err)
		c.errResp(codeSysTemp + "Unable to open maildrop, try again later")
		return nil
	}
	unlock, ok := c.opts().Locks.TryLock(mb.ID)
	if !ok {
		c.log.Info("maildrop locked by another session", "user", u.Address)
		c.errResp(codeInUse + "Maildrop already locked by another session")
		return nil
	}
	drop, err := loadMaildrop(c.ctx, c.opts().Store, mb)
	if err != nil {
		unlock()
		c.log.Error("read maildrop", "user", u.Address, "err", err)
		c.errResp(codeSysTemp + "Unable to read maildrop, try again later")
		return nil
	}
	c.drop, c.unlock = drop, unlock
	c.log = c.log.With("user", u.Address)
	n, size := drop.stat()
	c.log.Info("logged in", "messages", n, "octets", size)
	c.ok(fmt.Sprintf("maildrop has %d messages (%d octets)", n, size))
	return nil
}
