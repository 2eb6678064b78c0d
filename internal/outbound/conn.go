package outbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/outbound/mtasts"
)

// hostError means "this host did not take the transaction; try the next one" with the failure to report if no
// host does.
type hostError struct {
	failure
	remote string
}

func (e *hostError) Error() string {
	return fmt.Sprintf("%s: %d %s %s", e.remote, e.code, e.enhanced, e.text)
}

// errTLSFailed: STARTTLS was offered but failed; opportunistic TLS then retries the host in plain text (RFC 7435
// 3: a failed attempt at encryption must not stop delivery when the policy does not require it).
var errTLSFailed = errors.New("STARTTLS failed")

// deliverGroup delivers to rcpts, who share one destination, and returns their results in order.
func (c *Client) deliverGroup(ctx context.Context, msg *Message, sig, domain string, rcpts []Recipient) []Result {
	hops, f := c.route(ctx, domain)
	if f != nil {
		return failAll(rcpts, f.code, f.enhanced, f.text, "")
	}
	var sts *mtasts.Policy
	if c.opts.MTASTS != nil && len(hops) > 0 && hops[0].mx && !msg.TLSOptional {
		if sts = c.opts.MTASTS.Get(ctx, domain); sts != nil && sts.Mode == mtasts.ModeNone {
			sts = nil
		}
	}
	last := &hostError{failure: failure{451, "4.4.1", "No mail host of " + domain + " answered"}}
	var tempFail *hostError // the last temporary failure of a host that was tried
	for _, h := range hops {
		ips, ipRes, err := c.opts.Resolver.LookupIP(ctx, h.host)
		if err != nil {
			last = &hostError{failure: failure{451, "4.4.3", "Address lookup of " + h.host + " failed: " + err.Error()}}
			continue
		}
		pol, he := c.hostPolicy(ctx, h, ipRes.Authentic && !msg.TLSOptional, sts, domain, msg.RequireTLS)
		if he != nil {
			c.log.Info("host skipped", "queue_id", msg.ID, "host", h.host, "reason", he.text)
			last = he
			continue
		}
		for _, ip := range ips {
			res, err := c.transact(ctx, h, ip, pol, msg, sig, rcpts, false)
			if errors.Is(err, errTLSFailed) {
				c.log.Info("STARTTLS failed; retrying without TLS", "queue_id", msg.ID, "host", h.host, "ip", ip, "err", err)
				res, err = c.transact(ctx, h, ip, pol, msg, sig, rcpts, true)
			}
			if err == nil {
				return res
			}
			var he *hostError
			if errors.As(err, &he) {
				last = he
			} else {
				last = &hostError{failure: failure{451, "4.4.2", err.Error()}, remote: remoteName(h.host, ip)}
			}
			if last.code/100 == 4 {
				tempFail = last
			}
			c.log.Debug("host failed", "queue_id", msg.ID, "host", h.host, "ip", ip, "err", err)
			if ctx.Err() != nil {
				return failAll(rcpts, 451, "4.4.7", "Delivery attempt cancelled", last.remote)
			}
		}
	}
	if last.enhanced == "5.7.30" && tempFail != nil {
		// Some host failed only for now: it may yet take the REQUIRETLS message, so retry rather than bounce.
		last = tempFail
	}
	return failAll(rcpts, last.code, last.enhanced, last.text, last.remote)
}

func remoteName(host string, ip netip.Addr) string {
	if host == ip.String() {
		return "[" + host + "]"
	}
	return host + "[" + ip.String() + "]"
}

// session is one connection to one host, possibly carrying several transactions (see pool).
type session struct {
	cl     *smtp.Client
	conn   net.Conn // the TCP connection under any TLS: closing it aborts any I/O
	remote string
	tls    string // negotiated TLS version, "" for plain text
	pol    tlsPolicy
	out    tlsOutcome
	stop   func() bool // unbinds the session from the context of the transaction using it
	uses   int         // transactions started
	broken bool        // out of step with the server: never reused
}

// bind makes cancelling ctx abort the session's I/O, until unbind.
func (s *session) bind(ctx context.Context) {
	s.stop = context.AfterFunc(ctx, func() { s.conn.Close() })
}

// unbind reports whether the session survived its context.
func (s *session) unbind() bool { return s.stop() }

// quit ends a healthy session politely (RFC 5321 4.1.1.10), not waiting long for the answer.
func (s *session) quit() {
	s.cl.CommandTimeout = 10 * time.Second
	s.cl.Quit()
	s.cl.Close()
}

// fail notes an error of the session: anything but an SMTP reply, or a 421 (the server is closing), leaves
// the session unusable.
func (s *session) fail(err error) {
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code == 421 {
		s.broken = true
	}
}

// poolKey names the sessions interchangeable for a transaction.
func poolKey(h hop, ip netip.Addr, pol tlsPolicy, plain bool) string {
	return fmt.Sprintf("%s|%s|%d|%s|%t", h.host, ip, h.port, pol.key(), plain)
}

// session returns an open session to h at ip under pol: an idle one from the pool that answers RSET
// (RFC 5321 4.1.1.5), or a new one, authenticated with the relay when h is the relay.
func (c *Client) session(ctx context.Context, key string, h hop, ip netip.Addr, pol tlsPolicy, plain bool) (*session, error) {
	for {
		s := c.pool.get(key)
		if s == nil {
			break
		}
		s.bind(ctx)
		if err := s.cl.Reset(); err == nil {
			return s, nil
		}
		s.unbind()
		s.cl.Close()
	}
	s, err := c.connect(ctx, h, ip, pol, plain)
	if err != nil {
		return nil, err
	}
	s.bind(ctx)
	if h.relay && c.opts.Relay.Username != "" {
		fail := func(f failure) (*session, error) {
			s.unbind()
			s.cl.Close()
			return nil, &hostError{failure: f, remote: s.remote}
		}
		if s.tls == "" {
			return fail(failure{451, "4.7.0", "Relay host offers no TLS; not sending the password"})
		}
		if err := s.cl.Auth(sasl.NewPlainClient("", c.opts.Relay.Username, c.opts.Relay.Password)); err != nil {
			return fail(replyFailure(err, "AUTH"))
		}
	}
	return s, nil
}

// release returns s to the pool after a transaction, or closes it.
func (c *Client) release(key string, s *session) {
	alive := s.unbind()
	switch {
	case !alive || s.broken:
		s.cl.Close()
	default:
		c.pool.put(key, s)
	}
}

// replyFailure turns a command's error into a failure: the server's reply, or a lost connection.
func replyFailure(err error, what string) failure {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return failure{se.Code, enhanced(se), se.Message}
	}
	return failure{451, "4.4.2", "Lost connection at " + what + ": " + err.Error()}
}

// transact runs one SMTP transaction with host h at ip for rcpts. A *hostError (or errTLSFailed) means no
// recipient was given to this host and the next one may be tried; otherwise every recipient has a result.
func (c *Client) transact(ctx context.Context, h hop, ip netip.Addr, pol tlsPolicy, msg *Message, sig string, rcpts []Recipient, plain bool) ([]Result, error) {
	key := poolKey(h, ip, pol, plain)
	s, err := c.session(ctx, key, h, ip, pol, plain)
	if err != nil {
		return nil, err
	}
	defer c.release(key, s)
	s.uses++
	he := func(err error, what string) *hostError {
		s.fail(err)
		return &hostError{failure: replyFailure(err, what), remote: s.remote}
	}
	if f := checkRequireTLS(s, msg); f != nil {
		return nil, &hostError{failure: *f, remote: s.remote}
	}
	if f := c.checkExtensions(s, msg, sig, rcpts); f != nil {
		return failAll(rcpts, f.code, f.enhanced, f.text, s.remote), nil
	}
	if err := s.cl.Mail(msg.From, c.mailOptions(msg, rcpts)); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code/100 == 5 {
			return failAll(rcpts, se.Code, enhanced(se), se.Message, s.remote), nil
		}
		return nil, he(err, "MAIL") // 4xx or a broken connection: another host may do better
	}
	dsn, _ := s.cl.Extension("DSN")
	results := make([]Result, len(rcpts))
	var accepted []int
	for i, r := range rcpts {
		results[i] = Result{Recipient: r.Address, Remote: s.remote, DSN: dsn, TLS: s.detail()}
		err := s.cl.Rcpt(r.Address, rcptOptions(r))
		var se *smtp.SMTPError
		switch {
		case err == nil:
			accepted = append(accepted, i)
		case errors.As(err, &se):
			s.fail(err)
			results[i].Code, results[i].Enhanced, results[i].Text = se.Code, enhanced(se), se.Message
		default:
			return nil, he(err, "RCPT") // the connection broke before any data: nothing was sent
		}
	}
	if len(accepted) == 0 {
		return results, nil
	}
	code, enh, text := c.data(ctx, s, msg, sig)
	for _, i := range accepted {
		results[i].Code, results[i].Enhanced, results[i].Text = code, enh, text
	}
	return results, nil
}

// data sends the message and returns the reply to the final dot.
func (c *Client) data(ctx context.Context, s *session, msg *Message, sig string) (int, string, string) {
	w, err := s.cl.Data()
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		s.fail(err)
		return se.Code, enhanced(se), se.Message
	} else if err != nil {
		s.broken = true
		return 451, "4.4.2", "Lost connection before DATA: " + err.Error()
	}
	// From here on an error leaves the server inside DATA: the session cannot carry another transaction.
	body, err := msg.Open(ctx)
	if err != nil {
		s.broken = true
		return 451, "4.3.0", "Cannot read the queued message: " + err.Error()
	}
	defer body.Close()
	if _, err := io.WriteString(w, sig); err != nil {
		s.broken = true
		return 451, "4.4.2", "Lost connection while sending: " + err.Error()
	}
	if _, err := io.Copy(w, body); err != nil {
		s.broken = true
		return 451, "4.4.2", "Lost connection while sending: " + err.Error()
	}
	resp, err := w.CloseWithResponse()
	if errors.As(err, &se) {
		s.fail(err)
		return se.Code, enhanced(se), se.Message
	} else if err != nil {
		// The message may or may not have arrived (RFC 1047): retrying may duplicate it, dropping may lose it.
		s.broken = true
		return 451, "4.4.2", "Lost connection after the message: " + err.Error()
	}
	code, text := "2.0.0", resp.StatusText
	if f := strings.Fields(text); len(f) > 0 && isEnhanced(f[0]) {
		code, text = f[0], strings.TrimSpace(strings.TrimPrefix(text, f[0]))
	}
	return 250, code, text
}

// checkRequireTLS applies RFC 8689 5 to a session: TLS verified by PKIX or DANE (hostPolicy made sure of it;
// checked again because a session may come from the pool), and a next hop that advertises REQUIRETLS. A host
// failing it is skipped for the next; when none passes, the message is returned with 5.7.30.
func checkRequireTLS(s *session, msg *Message) *failure {
	if !msg.RequireTLS {
		return nil
	}
	if s.tls == "" || s.out.verified == "none" {
		return &failure{550, "5.7.30", "REQUIRETLS: TLS with " + s.remote + " is not verified (RFC 8689 5)"}
	}
	if ok, _ := s.cl.Extension("REQUIRETLS"); !ok {
		return &failure{550, "5.7.30", "REQUIRETLS support required: " + s.remote + " does not offer it (RFC 8689 5)"}
	}
	return nil
}

// checkExtensions refuses what the server cannot take before MAIL.
func (c *Client) checkExtensions(s *session, msg *Message, sig string, rcpts []Recipient) *failure {
	if max, ok := s.cl.MaxMessageSize(); ok && max > 0 && msg.Size+int64(len(sig)) > int64(max) {
		return &failure{552, "5.3.4", fmt.Sprintf("Message of %d bytes exceeds the server's limit of %d (RFC 1870)", msg.Size, max)}
	}
	if needsUTF8(msg.From, rcpts) {
		if ok, _ := s.cl.Extension("SMTPUTF8"); !ok {
			return &failure{553, "5.6.7", "Server does not support SMTPUTF8 (RFC 6531 3.2)"}
		}
	}
	return nil
}

func (c *Client) mailOptions(msg *Message, rcpts []Recipient) *smtp.MailOptions {
	o := &smtp.MailOptions{Size: msg.Size, EnvelopeID: msg.EnvID, RequireTLS: msg.RequireTLS, UTF8: needsUTF8(msg.From, rcpts)}
	switch strings.ToUpper(msg.Ret) {
	case "FULL":
		o.Return = smtp.DSNReturnFull
	case "HDRS":
		o.Return = smtp.DSNReturnHeaders
	}
	return o
}

// rcptOptions passes NOTIFY and ORCPT on (RFC 3461 5.2.1: a relaying MTA keeps the parameters).
func rcptOptions(r Recipient) *smtp.RcptOptions {
	o := &smtp.RcptOptions{}
	for _, n := range r.Notify {
		o.Notify = append(o.Notify, smtp.DSNNotify(strings.ToUpper(n)))
	}
	if typ, addr, ok := strings.Cut(r.ORcpt, ";"); ok && strings.EqualFold(typ, "rfc822") {
		if dec, err := DecodeXtext(addr); err == nil && isASCII(dec) {
			o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeRFC822, dec
		}
	}
	return o
}

// connect dials ip, reads the greeting, says EHLO and starts TLS as pol asks (never when plain), and returns a
// go-smtp client past that point.
func (c *Client) connect(ctx context.Context, h hop, ip netip.Addr, pol tlsPolicy, plain bool) (*session, error) {
	remote := remoteName(h.host, ip)
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(h.port))
	dctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	conn, err := c.opts.Dial(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return nil, &hostError{failure: failure{451, "4.4.1", "Connect to " + remote + ":" + strconv.Itoa(h.port) + ": " + err.Error()}, remote: remote}
	}
	s := &session{conn: conn, remote: remote, pol: pol, out: tlsOutcome{verified: "none"}}
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // cancelling ctx aborts the handshakes
	fail := func(err error) (*session, error) {
		stop()
		conn.Close()
		return nil, err
	}
	var greeting string
	if h.implicitTLS {
		tc := tls.Client(conn, c.tlsConfig(h, pol, &s.out))
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(tlsFailure(pol, "4.7.5", "TLS handshake with "+remote+": "+err.Error(), remote))
		}
		conn, s.tls = tc, tls.VersionName(tc.ConnectionState().Version)
	} else {
		next, g, err := c.startTLS(ctx, conn, h, s, plain)
		if err != nil {
			return fail(err)
		}
		conn, greeting = next, g
	}
	if greeting != "" {
		// The greeting and first EHLO were read before TLS; go-smtp expects to read a greeting itself.
		conn = &prefixConn{Conn: conn, r: io.MultiReader(strings.NewReader(greeting), conn)}
	}
	s.cl = smtp.NewClient(conn)
	s.cl.CommandTimeout, s.cl.SubmissionTimeout = c.opts.CommandTimeout, 2*c.opts.CommandTimeout
	if err := s.cl.Hello(c.opts.Hostname); err != nil {
		f := replyFailure(err, "EHLO")
		s.cl.Close()
		stop()
		return nil, &hostError{failure: f, remote: remote}
	}
	stop()
	if s.pol.source == "mta-sts-testing" && s.out.verified == "none" {
		// RFC 8461 5: testing mode delivers anyway; the failure is only reported.
		c.log.Warn("MTA-STS testing policy would refuse this host", "host", h.host, "remote", remote, "tls", s.tls, "problem", s.out.problem)
	}
	return s, nil
}

// startTLS reads the greeting, sends EHLO and, when STARTTLS is offered and plain is false, starts TLS. It
// returns the connection to continue on and the greeting line to replay to go-smtp. When s.pol requires TLS, a
// missing STARTTLS or a failed handshake is a *hostError; otherwise a failed handshake is errTLSFailed.
func (c *Client) startTLS(ctx context.Context, conn net.Conn, h hop, s *session, plain bool) (net.Conn, string, error) {
	remote, pol := s.remote, s.pol
	conn.SetDeadline(time.Now().Add(c.opts.CommandTimeout))
	defer conn.SetDeadline(time.Time{})
	tp := textproto.NewConn(conn) // never closed: closing it would close conn
	code, text, err := tp.ReadResponse(220)
	if err != nil {
		// RFC 5321 3.1/5.1: a 554 (or any non-220) greeting: try the next host.
		if code == 0 {
			code, text = 451, "No greeting: "+err.Error()
		}
		return nil, "", &hostError{failure: failure{code, "", text}, remote: remote}
	}
	greeting := "220 " + firstLine(text) + "\r\n"
	if _, err := tp.Cmd("EHLO %s", c.opts.Hostname); err != nil {
		return nil, "", &hostError{failure: failure{451, "4.4.2", "EHLO: " + err.Error()}, remote: remote}
	}
	_, ehlo, err := tp.ReadResponse(250)
	offered := err == nil && hasExtension(ehlo, "STARTTLS")
	if !offered && pol.level > levelMay {
		return nil, "", tlsFailure(pol, "4.7.4", remote+" offers no STARTTLS", remote)
	}
	if !offered || plain {
		return conn, greeting, nil
	}
	if _, err := tp.Cmd("STARTTLS"); err != nil {
		return nil, "", &hostError{failure: failure{451, "4.4.2", "STARTTLS: " + err.Error()}, remote: remote}
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		if pol.level > levelMay {
			return nil, "", tlsFailure(pol, "4.7.4", "STARTTLS refused by "+remote+": "+err.Error(), remote)
		}
		return nil, "", fmt.Errorf("%w: %s: %v", errTLSFailed, remote, err)
	}
	tc := tls.Client(conn, c.tlsConfig(h, pol, &s.out))
	if err := tc.HandshakeContext(ctx); err != nil {
		if pol.level > levelMay {
			return nil, "", tlsFailure(pol, "4.7.5", "TLS with "+remote+": "+err.Error(), remote)
		}
		return nil, "", fmt.Errorf("%w: %s: %v", errTLSFailed, remote, err)
	}
	s.tls = tls.VersionName(tc.ConnectionState().Version)
	return tc, greeting, nil
}

// prefixConn replays bytes already consumed from the connection.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// hasExtension looks for keyword among the EHLO reply lines after the first (RFC 5321 4.1.1.1).
func hasExtension(ehlo, keyword string) bool {
	lines := strings.Split(ehlo, "\n")
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], keyword) {
			return true
		}
	}
	return false
}

func enhanced(se *smtp.SMTPError) string {
	e := se.EnhancedCode
	if e == (smtp.EnhancedCode{}) || e == smtp.NoEnhancedCode {
		return fmt.Sprintf("%d.0.0", se.Code/100)
	}
	return fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2])
}

func isEnhanced(s string) bool {
	p := strings.Split(s, ".")
	if len(p) != 3 || (p[0] != "2" && p[0] != "4" && p[0] != "5") {
		return false
	}
	for _, x := range p[1:] {
		if _, err := strconv.Atoi(x); err != nil || len(x) > 3 {
			return false
		}
	}
	return true
}

func needsUTF8(from string, rcpts []Recipient) bool {
	if !isASCII(from) {
		return true
	}
	for _, r := range rcpts {
		if !isASCII(r.Address) {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
