// Package milter is the check that calls an external mail filter over the Sendmail milter protocol
// (github.com/emersion/go-milter's client): amavisd-new, MIMEDefang, OpenDKIM, spamass-milter, rspamd's proxy...
//
// It runs at DATA only: when the message is complete, one milter connection replays the whole transaction —
// negotiate, connect, HELO, MAIL, each RCPT, the header fields, the body and end of message — and closes. Why not
// stage by stage: a pipeline Session has no end-of-connection hook to close a milter connection held across
// commands, and one short connection per message cannot leak; the cost is that a milter's refusal of the
// connection, sender or a recipient is applied at DATA instead of at that command. A recipient the milter
// refuses refuses the message (a verdict cannot drop single recipients).
//
// Replies map onto verdicts: accept and continue → Accept; reject → Reject 554 5.7.1; tempfail → Tempfail 451
// 4.7.1; a reply code (smfi_setreply) → that code, enhanced code and text (4xx Tempfail, 5xx Reject); discard →
// the message is filed into Junk (filter.Verdict has no silent discard, and losing mail silently is worse than
// filing it). Modifications at end of message: add header and insert header → Verdict.Headers (added at the top;
// the insert position is not kept); change header of a field the message does not have → added (libmilter's
// smfi_chgheader adds in that case); quarantine → Junk. Not supported (logged and ignored): changing or deleting
// an existing header, body replacement, adding or removing recipients, changing the sender. Only add header,
// change header and quarantine are offered in negotiation, so well-behaved milters do not ask for the others.
//
// Config keys (wired by internal/app): each entry of [antispam] milter → one Check with Options.Address
// ("tcp:host:port", "inet:port@host" or "unix:/path"), [antispam] on_error → Options.OnError, optional
// [antispam] milter_timeout → Options.Timeout; hostname → Options.Hostname (the "j" macro).
package milter

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"
	gomilter "github.com/emersion/go-milter"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/engine"
)

// Options configure the check.
type Options struct {
	Address string // the milter's socket; required
	OnError string // "tempfail" (default) or "accept" when the milter cannot answer
	// Timeout bounds the whole conversation for one message (default 60 s).
	Timeout time.Duration
	// Hostname is this server's name, sent as the "j" macro; Name tells several milters apart in logs (default
	// "milter:ADDRESS").
	Hostname string
	Name     string
	Logger   *slog.Logger
}

// Check calls one milter. It is safe for concurrent use; each message uses its own connection.
type Check struct {
	o    Options
	addr engine.Addr
	cl   engine.Client
}

// New returns a Check for o.
func New(o Options) (*Check, error) {
	a, cl, err := engine.NewDialer("milter", o.Address, engine.Config{OnError: o.OnError, Timeout: o.Timeout,
		Logger: o.Logger}, 0)
	if err != nil {
		return nil, err
	}
	if o.Name == "" {
		o.Name = "milter:" + a.String()
	}
	cl.Check = o.Name
	return &Check{o: o, addr: a, cl: cl}, nil
}

// Name implements filter.Check.
func (c *Check) Name() string { return c.o.Name }

// offered is what the milter may ask for: see the package doc.
const offered = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine

// protocol is every step a milter may ask to skip, and every reply it may ask not to send, that the client
// honours. libmilter refuses the negotiation when the MTA does not offer a skip the milter asks for
// (clamav-milter asks for NOHELO, NOEOH, NOUNKNOWN and NODATA), so offer all we can; the leading-space header
// option and rejected recipients (RCPT_REJ) are not offered: the client sends neither.
const protocol = gomilter.OptNoConnect | gomilter.OptNoHelo | gomilter.OptNoMailFrom | gomilter.OptNoRcptTo |
	gomilter.OptNoBody | gomilter.OptNoHeaders | gomilter.OptNoEOH | gomilter.OptNoUnknown | gomilter.OptNoData |
	gomilter.OptSkip | gomilter.OptNoHeaderReply | gomilter.OptNoConnReply | gomilter.OptNoHeloReply |
	gomilter.OptNoMailReply | gomilter.OptNoRcptReply | gomilter.OptNoDataReply | gomilter.OptNoUnknownReply |
	gomilter.OptNoEOHReply | gomilter.OptNoBodyReply

// Data implements filter.DataChecker.
func (c *Check) Data(ctx context.Context, t *filter.Txn, m *filter.Message) filter.Verdict {
	ctx, cancel := c.cl.WithTimeout(ctx)
	defer cancel()
	v, err := c.run(ctx, t, m)
	if err != nil {
		return c.cl.Fail(err)
	}
	c.cl.Log.Info("milter answered", "milter", c.Name(), "queue_id", t.QueueID, "action", v.Action.String(),
		"reason", v.Reason, "headers_added", len(v.Headers), "junk", v.Junk)
	return v
}

// run replays the transaction to the milter; an error means no usable answer.
func (c *Check) run(ctx context.Context, t *filter.Txn, m *filter.Message) (filter.Verdict, error) {
	s, err := c.session(ctx)
	if err != nil {
		return filter.Verdict{}, err
	}
	defer s.Close()
	if v, done, err := c.envelope(s, t); err != nil || done {
		return v, err
	}
	r, err := m.Open()
	if err != nil {
		return filter.Verdict{}, fmt.Errorf("open message: %w", err)
	}
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	hdr, err := textproto.ReadHeader(br)
	if err != nil {
		return filter.Verdict{}, fmt.Errorf("read message header: %w", err)
	}
	act, err := s.Header(hdr)
	if err != nil {
		return filter.Verdict{}, err
	}
	if v, done := c.action(act, "header"); done {
		return v, nil
	}
	mods, act, err := s.BodyReadFrom(br)
	if err != nil {
		return filter.Verdict{}, err
	}
	v, _ := c.action(act, "end of message")
	if v.Action >= filter.Tempfail {
		return v, nil
	}
	c.apply(&v, mods, hdr, t.QueueID)
	return v, nil
}

// session connects and negotiates. Milters of protocol version 6 (libmilter today) get every option in
// protocol; one that answers with an older version (go-milter's own server speaks 2) is asked again with the
// options version 2 knows, on a new connection, since go-milter's client cannot downgrade with v6 options.
func (c *Check) session(ctx context.Context) (*gomilter.ClientSession, error) {
	dl, _ := ctx.Deadline()
	var err error
	for _, masks := range [][2]uint32{{uint32(offered), uint32(protocol)}, {uint32(offered & 0x3f), uint32(protocol & 0x7f)}} {
		d := &ctxDialer{ctx: ctx}
		cl := gomilter.NewClientWithOptions(c.addr.Network, c.addr.Address, gomilter.ClientOptions{
			Dialer:       d,
			ReadTimeout:  time.Until(dl),
			WriteTimeout: time.Until(dl),
			ActionMask:   gomilter.OptAction(masks[0]),
			ProtocolMask: gomilter.OptProtocol(masks[1]),
		})
		var s *gomilter.ClientSession
		s, err = cl.Session()
		if err == nil {
			return s, nil
		}
		// go-milter's Session does not close the connection when the negotiation fails.
		d.close()
		if !errors.Is(err, gomilter.ErrUnsupportedMilterVersion) {
			return nil, err
		}
	}
	return nil, err
}

// envelope sends the connection, HELO, MAIL and RCPT steps with the macros milters commonly read.
func (c *Check) envelope(s *gomilter.ClientSession, t *filter.Txn) (filter.Verdict, bool, error) {
	conn := t.Conn
	if conn == nil {
		conn = &filter.Conn{}
	}
	if err := s.Macros(gomilter.CodeConn, "j", c.o.Hostname, "{daemon_name}", "postern",
		"{client_addr}", addrString(conn)); err != nil {
		return filter.Verdict{}, false, err
	}
	family, addr := gomilter.FamilyUnknown, ""
	if conn.IP.IsValid() {
		family, addr = gomilter.FamilyInet, conn.IP.Unmap().String()
		if conn.IP.Unmap().Is6() {
			family = gomilter.FamilyInet6
		}
	}
	// The client's host name is not looked up here: "[ip]" is what Postfix sends for an unverified name.
	steps := []struct {
		name string
		call func() (*gomilter.Action, error)
	}{
		{"connect", func() (*gomilter.Action, error) { return s.Conn("["+addr+"]", family, 0, addr) }},
		{"helo", func() (*gomilter.Action, error) { return s.Helo(conn.Helo) }},
		{"mail", func() (*gomilter.Action, error) {
			if err := s.Macros(gomilter.CodeMail, "i", t.QueueID, "{auth_authen}", conn.AuthUser,
				"{mail_addr}", t.From.String()); err != nil {
				return nil, err
			}
			return s.Mail(t.From.String(), nil)
		}},
	}
	for _, r := range t.Recipients {
		steps = append(steps, struct {
			name string
			call func() (*gomilter.Action, error)
		}{"rcpt " + r.String(), func() (*gomilter.Action, error) {
			if err := s.Macros(gomilter.CodeRcpt, "{rcpt_addr}", r.String()); err != nil {
				return nil, err
			}
			return s.Rcpt(r.String(), nil)
		}})
	}
	for _, st := range steps {
		act, err := st.call()
		if err != nil {
			return filter.Verdict{}, false, err
		}
		if v, done := c.action(act, st.name); done {
			return v, true, nil
		}
	}
	return filter.Verdict{}, false, nil
}

func addrString(c *filter.Conn) string {
	if c.IP.IsValid() {
		return c.IP.Unmap().String()
	}
	return ""
}

// action maps a milter reply at a step onto a verdict; done is true when the conversation ends there.
func (c *Check) action(act *gomilter.Action, step string) (v filter.Verdict, done bool) {
	reason := fmt.Sprintf("%s at %s", c.Name(), step)
	switch act.Code {
	case gomilter.ActContinue, gomilter.ActSkip:
		return filter.Verdict{}, false
	case gomilter.ActAccept:
		return filter.Verdict{Reason: reason + ": accept"}, true
	case gomilter.ActReject:
		return filter.Verdict{Action: filter.Reject, Code: 554, Enhanced: "5.7.1", Reason: reason + ": reject"}, true
	case gomilter.ActTempFail:
		return filter.Verdict{Action: filter.Tempfail, Code: 451, Enhanced: "4.7.1", Reason: reason + ": tempfail"}, true
	case gomilter.ActDiscard:
		return filter.Verdict{Action: filter.Tag, Junk: true, Reason: reason + ": discard (filed into Junk)"}, true
	case gomilter.ActReplyCode:
		return replyVerdict(act.SMTPCode, act.SMTPText, reason), true
	}
	return filter.Verdict{Action: filter.Tempfail, Code: 451, Enhanced: "4.7.1",
		Reason: fmt.Sprintf("%s: unexpected reply %q", reason, rune(act.Code))}, true
}

// replyVerdict turns smfi_setreply's code and text ("5.7.1 Spam rejected") into a verdict.
func replyVerdict(code int, text, reason string) filter.Verdict {
	text = strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, text))
	// Multi-line replies come as "code-text\r\ncode text"; keep the last line's text only
	// (each line break is two spaces by now).
	if prefix := fmt.Sprintf("  %d ", code); strings.Contains(text, prefix) {
		text = strings.TrimSpace(text[strings.LastIndex(text, prefix)+len(prefix):])
	}
	enhanced := ""
	if f, rest, ok := strings.Cut(text, " "); ok && isEnhanced(f, code) {
		enhanced, text = f, strings.TrimSpace(rest)
	}
	if len(text) > 200 {
		text = text[:200]
	}
	reason = fmt.Sprintf("%s: reply %d %s %s", reason, code, enhanced, text)
	switch {
	case code >= 400 && code < 500:
		return filter.Verdict{Action: filter.Tempfail, Code: code, Enhanced: enhanced, Message: text, Reason: reason}
	case code >= 500 && code < 600:
		return filter.Verdict{Action: filter.Reject, Code: code, Enhanced: enhanced, Message: text, Reason: reason}
	}
	return filter.Verdict{Reason: reason}
}

// isEnhanced reports whether f is an RFC 3463 status code whose class matches the reply code.
func isEnhanced(f string, code int) bool {
	p := strings.Split(f, ".")
	if len(p) != 3 || len(p[0]) != 1 || p[0][0] != byte('0'+code/100) {
		return false
	}
	for _, s := range p[1:] {
		if s == "" || len(s) > 3 || strings.Trim(s, "0123456789") != "" {
			return false
		}
	}
	return true
}

// apply folds end-of-message modifications into v (see the package doc for what is supported).
func (c *Check) apply(v *filter.Verdict, mods []gomilter.ModifyAction, hdr textproto.Header, queueID string) {
	for _, m := range mods {
		switch m.Code {
		case gomilter.ActAddHeader, gomilter.ActInsertHeader:
			if h, ok := header(m.HeaderName, m.HeaderValue); ok {
				v.Headers = append(v.Headers, h)
			}
		case gomilter.ActChangeHeader:
			if h, ok := header(m.HeaderName, m.HeaderValue); ok && countFields(hdr, m.HeaderName) < int(m.HeaderIndex) {
				v.Headers = append(v.Headers, h)
				continue
			}
			c.cl.Log.Warn("milter modification not supported, ignored", "milter", c.Name(), "queue_id", queueID,
				"modification", "change header", "header", m.HeaderName)
		case gomilter.ActQuarantine:
			v.Junk = true
			v.Reason = strings.TrimSpace(v.Reason + " quarantine: " + m.Reason)
		default:
			c.cl.Log.Warn("milter modification not supported, ignored", "milter", c.Name(), "queue_id", queueID,
				"modification", string(rune(m.Code)))
		}
	}
	if v.Action == filter.Accept && (len(v.Headers) > 0 || v.Junk) {
		v.Action = filter.Tag
	}
}

func countFields(h textproto.Header, name string) int {
	n := 0
	for f := h.FieldsByKey(name); f.Next(); {
		n++
	}
	return n
}

// header validates a header a milter asks to add: a field name of printable ASCII without colon (RFC 5322 2.2) and
// a value unfolded to one line (the writer folds it again).
func header(name, value string) (filter.Header, bool) {
	if name == "" || len(name) > 76 || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == ':' }) {
		return filter.Header{}, false
	}
	value = strings.Join(strings.Fields(value), " ")
	if value == "" {
		return filter.Header{}, false
	}
	return filter.Header{Name: name, Value: value}, true
}

// ctxDialer dials with ctx and clamps the client's per-operation deadlines to ctx's, so the conversation as a
// whole ends with the check's timeout.
type ctxDialer struct {
	ctx  context.Context
	conn net.Conn // the connection dialed, closed by close
}

func (d *ctxDialer) Dial(network, addr string) (net.Conn, error) {
	c, err := engine.Dial(d.ctx, engine.Addr{Network: network, Address: addr})
	if err != nil {
		return nil, err
	}
	dl, _ := d.ctx.Deadline()
	d.conn = &clampConn{Conn: c, dl: dl}
	return d.conn, nil
}

func (d *ctxDialer) close() {
	if d.conn != nil {
		d.conn.Close()
	}
}

type clampConn struct {
	net.Conn
	dl time.Time
}

func (c *clampConn) clamp(t time.Time) time.Time {
	if !c.dl.IsZero() && (t.IsZero() || t.After(c.dl)) {
		return c.dl
	}
	return t
}

func (c *clampConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *clampConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.clamp(t)) }
func (c *clampConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.clamp(t)) }
