package imapserver

import (
	"bufio"
	"compress/flate"
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

// state is the RFC 9051 3 connection state.
type state int

const (
	stateNotAuth state = 1 << iota
	stateAuth
	stateSelected
	stateLogout

	anyState    = stateNotAuth | stateAuth | stateSelected
	authedState = stateAuth | stateSelected
)

// errLogout ends the session after the tagged response (LOGOUT, too many failures).
var errLogout = errors.New("logout")

// imapError is a tagged NO or BAD with an optional response code (RFC 9051 7.1).
type imapError struct {
	status string // "NO" or "BAD"
	code   string // "TRYCREATE", "NONEXISTENT", ... without brackets
	text   string
}

func (e *imapError) Error() string { return e.status + " " + e.text }

func no(code, text string) error  { return &imapError{"NO", code, text} }
func bad(code, text string) error { return &imapError{"BAD", code, text} }

// session is one IMAP connection.
type session struct {
	connserver.IdleClock // lets a full server end the session idle the longest (connserver.Idler)

	srv    *Server
	ip     netip.Addr
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex // guards conn and the idle clock against Shutdown
	conn net.Conn

	br  *bufio.Reader
	bw  *bufio.Writer
	zw  *flate.Writer // COMPRESS=DEFLATE output, nil when off
	src *source

	tls       bool
	compress  bool
	state     state
	user      store.User
	rev2      bool // ENABLE IMAP4rev2
	condstore bool // CONDSTORE enabled (by ENABLE or a CONDSTORE-using command, RFC 7162 3.1)
	qresync   bool
	utf8      bool // UTF8=ACCEPT enabled (RFC 6855)
	sel       *view
	prevSel   *view // closed by SELECT / EXAMINE, for its \Recent messages should the same mailbox come next
	authFails int
	searchRes []uint32 // SEARCHRES "$" (RFC 5182): UIDs saved by the last SEARCH RETURN (SAVE)

	bye     string // sent after the tagged response when the session must end
	cmdName string // the command in progress ("FETCH", "UID FETCH")
	okCode  string // the tagged OK's response code for the command in progress
	okText  string

	tokens  float64 // command rate limiter (token bucket)
	lastCmd time.Time
}

func newSession(s *Server, c net.Conn, ip netip.Addr) *session {
	id := s.nextID.Add(1)
	ctx, cancel := context.WithCancel(s.ctx)
	sess := &session{srv: s, conn: c, ip: ip, ctx: ctx, cancel: cancel, state: stateNotAuth,
		log: s.log.With("conn", id, "remote", ip.String())}
	_, sess.tls = c.(*tls.Conn)
	sess.br = bufio.NewReaderSize(c, 8192)
	sess.bw = bufio.NewWriterSize(c, 16384)
	sess.src = &source{br: sess.br, maxLine: s.opts.MaxLineBytes, maxSmall: 1 << 20, cont: sess.sendContinuation}
	sess.tokens = float64(10 * s.opts.CommandsPerSecond)
	sess.Wait()
	return sess
}

func (c *session) opts() *Options { return &c.srv.opts }

// utf8Names reports whether mailbox names go over the wire as UTF-8 (RFC 9051 5.1, RFC 6855 3).
func (c *session) utf8Names() bool { return c.rev2 || c.utf8 }

// InterruptIfIdle makes a session that waits for a command (or IDLEs) see the shutdown at once.
func (c *session) InterruptIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.IdleSince().IsZero() { // waiting for a command, not running one
		c.conn.SetReadDeadline(time.Now())
	}
}

func (c *session) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.Close()
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

// Serve runs the session; a panic is logged and ends only this connection.
func (c *session) Serve() {
	defer func() {
		c.cancel()
		if c.sel != nil {
			c.sel.close()
		}
		c.Close()
	}()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic in IMAP session", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	c.log.Debug("connected")
	if tc, ok := c.conn.(*tls.Conn); ok {
		tc.SetDeadline(time.Now().Add(30 * time.Second))
		if err := tc.HandshakeContext(c.ctx); err != nil {
			c.log.Debug("TLS handshake failed", "err", err)
			return
		}
		tc.SetDeadline(time.Time{})
	}
	c.writef("* OK [CAPABILITY %s] %s Postern IMAP4rev2 ready", strings.Join(c.capabilities(), " "), c.opts().Hostname)
	for {
		line, err := c.readCommandLine()
		if err != nil {
			c.readFailed(err)
			return
		}
		c.throttle()
		c.setBusy(true)
		err = c.execute(line)
		c.setBusy(false)
		if err != nil {
			c.flush()
			return
		}
	}
}

// readCommandLine waits for the next command line, flushing responses first when no pipelined input is waiting.
func (c *session) readCommandLine() ([]byte, error) {
	for {
		if c.br.Buffered() == 0 {
			if err := c.flush(); err != nil {
				return nil, err
			}
		}
		c.mu.Lock()
		if c.srv.conns.Closing() {
			c.mu.Unlock()
			return nil, ErrServerClosed
		}
		c.conn.SetReadDeadline(time.Now().Add(c.opts().IdleTimeout))
		c.mu.Unlock()
		line, tooLong, err := c.src.readLine()
		if err != nil {
			return nil, err
		}
		if tooLong {
			// The tag is kept from the line's start so the client can match the answer.
			if tag := leadingTag(c.src.head); tag != "" {
				c.writef("%s BAD [TOOBIG] Command line too long", tag)
			} else {
				c.writef("* BAD [TOOBIG] Command line too long")
			}
			continue
		}
		if len(line) == 0 {
			// Not a command (RFC 9051 7.1.5: untagged BAD when no command can be named); the session goes on.
			c.writef("* BAD Empty command line")
			continue
		}
		return line, nil
	}
}

// readFailed says goodbye after a failed read: shutdown or idle timeout; a vanished client gets nothing.
func (c *session) readFailed(err error) {
	var ne net.Error
	switch {
	case c.srv.conns.Closing() || errors.Is(err, ErrServerClosed):
		c.writef("* BYE [UNAVAILABLE] Server shutting down")
	case errors.As(err, &ne) && ne.Timeout():
		c.writef("* BYE Autologout; idle for too long") // RFC 9051 5.4
	case errors.Is(err, errTooBig):
		c.writef("* BYE [TOOBIG] Literal too big")
	default:
		c.log.Debug("read", "err", err)
		return
	}
	c.flush()
}

// throttle keeps a session under CommandsPerSecond on average, with bursts of ten seconds' worth.
func (c *session) throttle() {
	rate := float64(c.opts().CommandsPerSecond)
	now := time.Now()
	if !c.lastCmd.IsZero() {
		c.tokens = min(c.tokens+now.Sub(c.lastCmd).Seconds()*rate, 10*rate)
	}
	c.lastCmd = now
	if c.tokens < 1 {
		wait := time.Duration((1 - c.tokens) / rate * float64(time.Second))
		c.flush()
		time.Sleep(wait)
		c.tokens = 1
		c.lastCmd = time.Now()
	}
	c.tokens--
}

// writef writes one response line (CRLF appended). Output is buffered until flush.
func (c *session) writef(format string, args ...any) {
	fmt.Fprintf(c.bw, format, args...)
	c.bw.WriteString("\r\n")
}

// writeLine writes a response built as bytes, adding CRLF.
func (c *session) writeLine(b []byte) {
	c.bw.Write(b)
	c.bw.WriteString("\r\n")
}

// flush sends buffered responses (and the compressor's pending output).
func (c *session) flush() error {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	conn.SetWriteDeadline(time.Now().Add(5 * time.Minute))
	if err := c.bw.Flush(); err != nil {
		return err
	}
	if c.zw != nil {
		return c.zw.Flush()
	}
	return nil
}

// sendContinuation answers a synchronizing literal or an AUTHENTICATE step.
func (c *session) sendContinuation() error {
	c.writef("+ Ready for literal data")
	return c.flush()
}

// execute parses the tag and command name, runs the handler and writes the tagged response. A non-nil error
// ends the session.
func (c *session) execute(line []byte) error {
	p := newParser(c.src, line)
	p.utf8 = c.utf8Names()
	tag := p.take(isTagChar, "tag")
	p.sp()
	name := p.word()
	if name == "UID" && p.ok() {
		p.sp()
		name = "UID " + p.word()
	}
	if p.err != nil {
		if err := p.skipRest(); err != nil {
			return err
		}
		if tag == "" {
			c.writef("* BAD Missing or invalid tag")
		} else {
			c.writef("%s BAD Missing or invalid command", tag)
		}
		return nil
	}
	cmd, ok := commands[name]
	if !ok {
		p.fail("unknown command %s", name)
		if err := p.skipRest(); err != nil {
			return err
		}
		c.writef("%s BAD Unknown command", tag)
		return nil
	}
	if c.state&cmd.states == 0 {
		p.fail("not allowed now")
		if err := p.skipRest(); err != nil {
			return err
		}
		c.writef("%s BAD Command %s not allowed in the %s state", tag, name, c.stateName())
		return nil
	}
	c.cmdName, c.okCode, c.okText = name, "", ""
	if !cmd.ownPoll {
		c.pollUpdates(false, false) // new messages and flag changes: safe before any command
	}
	err := cmd.fn(c, tag, p)
	return c.finish(tag, name, cmd, p, err)
}

// finish writes the pending untagged updates allowed after this command and the tagged response.
func (c *session) finish(tag, name string, cmd command, p *parser, err error) error {
	if p.err != nil && (err == nil || errors.Is(err, p.err)) {
		err = p.err
		if serr := p.skipRest(); serr != nil {
			var le *literalError
			if errors.As(serr, &le) {
				c.writef("%s BAD [TOOBIG] Literal too big", tag)
			}
			return serr
		}
	}
	if errors.Is(err, errLogout) {
		return err
	}
	if errors.Is(err, errAnswered) {
		return nil
	}
	if c.sel != nil {
		c.pollUpdates(!cmd.noExpunge, false)
	}
	var ie *imapError
	var se *syntaxError
	var le *literalError
	switch {
	case err == nil:
		text := c.okText
		if text == "" {
			text = name + " completed"
		}
		c.writef("%s OK %s%s", tag, codeText(c.okCode), text)
	case errors.As(err, &ie):
		c.writef("%s %s %s%s", tag, ie.status, codeText(ie.code), ie.text)
	case errors.As(err, &se):
		c.writef("%s BAD %s", tag, se.msg)
	case errors.As(err, &le):
		c.writef("%s BAD [TOOBIG] %s", tag, le.Error())
	default:
		var ioe *ioError
		if errors.As(err, &ioe) {
			return err
		}
		if c.ctx.Err() != nil {
			return err
		}
		c.log.Error("command failed", "cmd", name, "err", err)
		c.writef("%s NO [SERVERBUG] Internal error, try again later", tag)
	}
	if c.state == stateLogout {
		if c.bye != "" {
			c.writef("* BYE %s", c.bye)
		}
		return errLogout
	}
	return nil
}

func codeText(code string) string {
	if code == "" {
		return ""
	}
	return "[" + code + "] "
}

func (c *session) stateName() string {
	switch c.state {
	case stateNotAuth:
		return "not authenticated"
	case stateAuth:
		return "authenticated"
	case stateSelected:
		return "selected"
	}
	return "logout"
}

// startTLS upgrades the connection after the tagged OK was sent.
func (c *session) startTLS() error {
	if err := c.flush(); err != nil {
		return err
	}
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	tc := tls.Server(conn, c.opts().TLSConfig)
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
	c.bw.Reset(tc)
	return nil
}

// startCompress turns on COMPRESS=DEFLATE (RFC 4978) after the tagged OK was sent.
func (c *session) startCompress() error {
	if err := c.flush(); err != nil {
		return err
	}
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	zw, err := flate.NewWriter(conn, flate.DefaultCompression)
	if err != nil {
		return err
	}
	// The client sends nothing compressed before our OK (RFC 4978 3), so nothing is buffered in c.br. The
	// decoder's goroutine ends when the connection is closed at the end of the session.
	c.br.Reset(newInflateReader(bufio.NewReaderSize(conn, 8192)))
	c.zw = zw
	c.bw.Reset(zw)
	c.compress = true
	return nil
}

// leadingTag returns the tag at the start of a line prefix, if it is one.
func leadingTag(head []byte) string {
	i := 0
	for i < len(head) && isTagChar(head[i]) {
		i++
	}
	if i == 0 || i >= len(head) || head[i] != ' ' {
		return ""
	}
	return string(head[:i])
}

// tlsState returns the state of the session's TLS layer (for SCRAM-*-PLUS channel binding and EXTERNAL), nil
// before STARTTLS on 143.
func (c *session) tlsState() *tls.ConnectionState {
	c.mu.Lock()
	tc, ok := c.conn.(*tls.Conn)
	c.mu.Unlock()
	if !ok {
		return nil
	}
	cs := tc.ConnectionState()
	return &cs
}
