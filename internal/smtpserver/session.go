package smtpserver

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
	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/maillog"
	"github.com/postern/postern/internal/store"
)

// maxCommandLine bounds a command line including CRLF. RFC 5321 4.5.3.1.4 sets 512 for the base command, and
// extensions (SIZE, DSN, SMTPUTF8) lengthen MAIL and RCPT; 1000 is the text-line limit of 4.5.3.1.6.
const maxCommandLine = 1000

// reply is an SMTP reply: code, enhanced status code (RFC 3463) and text.
type reply struct {
	code     int
	enhanced string
	text     string
}

// errCloseSession ends a session after its reply was written.
var errCloseSession = errors.New("close session")

// session is one SMTP connection.
type session struct {
	connserver.IdleClock // lets a full server end the session idle the longest (connserver.Idler)

	srv  *Server
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	ip   netip.Addr
	log  *slog.Logger
	ctx  context.Context

	mu     sync.Mutex // guards inData and deadline changes against Shutdown
	inData bool

	tls      bool
	helo     string
	esmtp    bool
	user     *store.User
	tx       *transaction
	errors   int
	commands int
	ipAction string // access table action for the client IP

	fs   *filter.Session // the listener's checks; nil without filters
	held *filter.Verdict // a connect or HELO stage refusal, answered at RCPT (Postfix's smtpd_delay_reject)
}

// transaction is one MAIL ... DATA exchange.
type transaction struct {
	env     mail.Envelope
	discard bool // access DISCARD: accept and drop
	chunks  *bdat
}

func newSession(s *Server, c net.Conn, ip netip.Addr) *session {
	id := s.nextID.Add(1)
	sess := &session{srv: s, conn: c, ip: ip, ctx: context.Background(),
		log: s.log.With("conn", id, "remote", ip.String())}
	_, sess.tls = c.(*tls.Conn)
	sess.br = bufio.NewReaderSize(c, 4096)
	sess.bw = bufio.NewWriterSize(c, 4096)
	return sess
}

func (c *session) opts() *Options { return &c.srv.opts }

// InterruptIfIdle makes a session that waits for a command see the shutdown at once.
func (c *session) InterruptIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inData {
		c.conn.SetReadDeadline(time.Now())
	}
}

// Close ends the connection whatever the session is doing (the Shutdown deadline).
func (c *session) Close() { c.conn.Close() }

func (c *session) setInData(v bool) {
	c.mu.Lock()
	c.inData = v
	c.conn.SetReadDeadline(time.Now().Add(c.opts().ReadTimeout))
	c.mu.Unlock()
}

// Serve runs the session; a panic is logged and ends only this connection.
func (c *session) Serve() {
	defer c.conn.Close()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic in SMTP session", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	c.log.Debug("connected")
	if !c.greet() {
		return
	}
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
		if c.srv.conns.Closing() && c.tx == nil {
			c.send(reply{421, "4.3.2", "Service shutting down, closing connection"})
			c.flush()
			return
		}
	}
}

// greet checks the access table for the client IP and sends the 220 (or 554) greeting (RFC 5321 4.2).
func (c *session) greet() bool {
	action, err := c.opts().Directory.Access(c.ctx, c.ip)
	if err != nil {
		c.log.Error("access lookup", "err", err)
		c.send(reply{421, "4.3.0", c.opts().Hostname + " Service temporarily unavailable"})
		c.flush()
		return false
	}
	c.ipAction = action
	if action == store.ActionReject {
		c.mailLog(maillog.Event{Event: "rejected", Status: "554 5.7.1", Detail: "client IP rejected by access table"})
		c.send(reply{554, "5.7.1", c.opts().Hostname + " Access denied"})
		c.flush()
		return false
	}
	if f := c.opts().Filters; f != nil {
		// Trusted: the refusals waived() would waive are not asked for at all (filter.Conn.Trusted).
		fs, v := f.Connect(c.ctx, filter.Conn{IP: c.ip, Listener: c.opts().Mode.String(), TLS: c.tls,
			Trusted: c.opts().Mode == ModeMX && (action == store.ActionOK || action == store.ActionRelay)})
		c.fs = fs
		c.hold(v)
	}
	c.send(reply{220, "", c.opts().Hostname + " ESMTP Postern"})
	return true
}

// hold keeps the first refusal of the connect or HELO stage. Like Postfix's default smtpd_delay_reject, it is
// answered at each RCPT rather than at once: the session goes on (a client that cannot parse a refused greeting
// would retry at once) and the mail log shows the sender and recipient of what was refused.
func (c *session) hold(v filter.Verdict) {
	if v.Action >= filter.Tempfail && c.held == nil {
		c.held = &v
	}
}

// waived reports whether a filter refusal before DATA is waived on the MX listener: for a client the access table
// lets in (OK, RELAY), every such refusal; for a client that authenticated, the connect and HELO ones (a user on a
// dynamic address listed in a DNSBL must still be able to send) — as Postfix's usual check_client_access and
// permit_sasl_authenticated placed before reject_rbl_client. Rate limits still apply to authenticated users, and
// the submission listeners' checks always apply.
func (c *session) waived(held bool) bool {
	if c.opts().Mode != ModeMX {
		return false
	}
	return c.ipAction == store.ActionOK || c.ipAction == store.ActionRelay || held && c.user != nil
}

// filterReply turns a filter refusal at stage into the reply and its mail log line; nil when v lets the command
// through (or the refusal is waived). held marks a connect or HELO refusal answered at RCPT.
func (c *session) filterReply(stage string, v filter.Verdict, to string, held bool) *reply {
	if v.Action < filter.Tempfail {
		return nil
	}
	if c.waived(held) {
		c.log.Debug("filter refusal waived for trusted client", "stage", stage, "reason", v.Reason)
		return nil
	}
	code, enh, text := v.Reply(stage)
	e := maillog.Event{Event: "rejected", To: to, Status: fmt.Sprintf("%d %s", code, enh), Detail: text}
	if v.Action == filter.Tempfail {
		e.Event = "deferred"
	}
	if v.Reason != "" && v.Reason != text {
		e.Detail = text + " (" + v.Reason + ")"
	}
	if c.tx != nil {
		e.QueueID, e.From = c.tx.env.QueueID, c.tx.env.From.String()
	}
	c.mailLog(e)
	return &reply{code, enh, text}
}

// readFailed answers a failed command read: shutdown, timeout or a vanished client.
func (c *session) readFailed(err error) {
	var ne net.Error
	switch {
	case c.srv.conns.Closing():
		c.send(reply{421, "4.3.2", "Service shutting down, closing connection"})
	case errors.As(err, &ne) && ne.Timeout():
		c.send(reply{421, "4.4.2", c.opts().Hostname + " Error: timeout exceeded"})
	default:
		return
	}
	c.flush()
}

// readCommand reads one command line. An over-long line is consumed and answered with 500, and the session goes on.
func (c *session) readCommand() (string, error) {
	for {
		if c.br.Buffered() == 0 {
			if err := c.flush(); err != nil {
				return "", err
			}
		}
		c.mu.Lock()
		if c.srv.conns.Closing() && !c.inData {
			c.mu.Unlock()
			return "", ErrServerClosed
		}
		c.conn.SetReadDeadline(time.Now().Add(c.opts().ReadTimeout))
		c.mu.Unlock()
		c.Wait()
		line, tooLong, err := readLine(c.br, maxCommandLine)
		c.Work()
		if err != nil {
			return "", err
		}
		if tooLong {
			if c.badCommand(reply{500, "5.5.2", "Error: line too long"}) {
				return "", errCloseSession
			}
			continue
		}
		return line, nil
	}
}

// readLine reads through the next LF. It returns the line without CRLF and whether it exceeded max octets (the
// excess is discarded).
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

// send writes a reply; multi-line when text contains newlines (RFC 5321 4.2.1).
func (c *session) send(r reply) {
	lines := strings.Split(r.text, "\n")
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		if r.enhanced != "" {
			l = r.enhanced + " " + l
		}
		fmt.Fprintf(c.bw, "%d%s%s\r\n", r.code, sep, l)
	}
}

func (c *session) flush() error {
	c.conn.SetWriteDeadline(time.Now().Add(c.opts().ReadTimeout))
	return c.bw.Flush()
}

// badCommand sends r and counts an error; it reports whether the session must end (the error budget is spent).
func (c *session) badCommand(r reply) bool {
	c.send(r)
	c.errors++
	if c.errors >= c.opts().MaxErrors {
		c.send(reply{421, "4.7.0", c.opts().Hostname + " Error: too many errors"})
		return true
	}
	return false
}

func (c *session) mailLog(e maillog.Event) {
	e.Remote = c.ip.String()
	if c.user != nil {
		e.User = c.user.Address
	}
	c.opts().MailLog.Log(e)
}

// dispatch runs one command. A non-nil error closes the session.
func (c *session) dispatch(line string) error {
	c.commands++
	if c.commands > c.opts().MaxCommands {
		c.send(reply{421, "4.7.0", c.opts().Hostname + " Error: too many commands"})
		return errCloseSession
	}
	verb, arg, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	arg = strings.TrimSpace(arg)
	var r *reply
	switch verb {
	case "EHLO", "HELO":
		r = c.cmdHelo(verb, arg)
	case "STARTTLS":
		return c.cmdStartTLS(arg)
	case "AUTH":
		r = c.cmdAuth(arg)
	case "MAIL":
		r = c.cmdMail(arg)
	case "RCPT":
		r = c.cmdRcpt(arg)
	case "DATA":
		return c.cmdData(arg)
	case "BDAT":
		return c.cmdBdat(arg)
	case "RSET":
		c.resetTx()
		r = &reply{250, "2.0.0", "Ok"}
	case "NOOP":
		r = &reply{250, "2.0.0", "Ok"}
	case "VRFY":
		// RFC 5321 3.5.3: 252 without disclosing whether the user exists.
		r = &reply{252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"}
	case "HELP":
		r = &reply{214, "2.0.0", "See RFC 5321"}
	case "QUIT":
		c.send(reply{221, "2.0.0", "Bye"})
		return errCloseSession
	default:
		r = &reply{500, "5.5.2", "Error: command not recognized"}
	}
	if r.code >= 500 && isClientError(r.code) {
		if c.badCommand(*r) {
			return errCloseSession
		}
		return nil
	}
	c.send(*r)
	return nil
}

// isClientError reports the replies that count against the session's error budget.
func isClientError(code int) bool {
	switch code {
	case 500, 501, 502, 503, 504, 530, 535, 538, 555:
		return true
	}
	return false
}

func (c *session) resetTx() {
	if c.tx != nil && c.tx.chunks != nil {
		c.tx.chunks.abort()
	}
	c.tx = nil
	if c.fs != nil {
		c.fs.Reset()
	}
}

func (c *session) cmdHelo(verb, arg string) *reply {
	if arg == "" {
		return &reply{501, "5.5.4", "Syntax: " + verb + " hostname"}
	}
	c.resetTx()
	c.helo, c.esmtp = strings.Fields(arg)[0], verb == "EHLO"
	if c.fs != nil {
		c.hold(c.fs.Helo(c.ctx, c.helo))
	}
	if !c.esmtp {
		return &reply{250, "", c.opts().Hostname}
	}
	caps := []string{c.opts().Hostname, "PIPELINING", fmt.Sprintf("SIZE %d", c.opts().MaxMessageBytes), "8BITMIME",
		"SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "DSN"}
	if c.opts().TLSConfig != nil && !c.tls {
		caps = append(caps, "STARTTLS")
	}
	if c.tls {
		caps = append(caps, "REQUIRETLS") // RFC 8689 4.1: offered only over TLS
	}
	if c.authAllowed() && c.user == nil {
		caps = append(caps, "AUTH "+strings.Join(c.opts().Auth.MechanismsFor(c.tlsState()), " "))
	}
	return &reply{250, "", strings.Join(caps, "\n")}
}

// authAllowed: passwords only over TLS unless the admin allowed plaintext (loopback is not exempt).
func (c *session) authAllowed() bool { return c.tls || c.opts().AllowPlaintextAuth }

// cmdStartTLS upgrades the connection (RFC 3207).
func (c *session) cmdStartTLS(arg string) error {
	switch {
	case arg != "":
		return c.errReply(reply{501, "5.5.4", "Syntax: STARTTLS"})
	case c.tls:
		return c.errReply(reply{503, "5.5.1", "Error: TLS already active"})
	case c.opts().TLSConfig == nil:
		return c.errReply(reply{502, "5.5.1", "Error: command not implemented"})
	case c.tx != nil || c.user != nil:
		// Not mid-transaction or after AUTH: the session state would straddle the plaintext and TLS parts
		// (Apache James' starttls_session_fixation test expects 501).
		return c.errReply(reply{501, "5.5.1", "Error: STARTTLS not allowed now"})
	case c.br.Buffered() > 0:
		// RFC 3207 6 / CVE-2011-0411: anything pipelined after STARTTLS would be executed inside the TLS session
		// although it was sent in plaintext. Refuse and drop it.
		c.br.Discard(c.br.Buffered())
		c.send(reply{451, "4.7.0", "Unable to process request: data pipelined after STARTTLS"})
		return nil
	}
	c.send(reply{220, "2.0.0", "Ready to start TLS"})
	if err := c.flush(); err != nil {
		return err
	}
	tc := tls.Server(c.conn, c.opts().TLSConfig)
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
	if c.fs != nil {
		c.fs.SetTLS(true)
	}
	// RFC 3207 4.2: forget everything learned before TLS.
	c.helo, c.esmtp, c.user, c.tx = "", false, nil, nil
	return nil
}

// errReply sends a client-error reply inside a command that returns an error value.
func (c *session) errReply(r reply) error {
	if c.badCommand(r) {
		return errCloseSession
	}
	return nil
}
