package smtpserver

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/internal/auth"
	"github.com/postern/postern/internal/directory"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/maillog"
	"github.com/postern/postern/internal/store"
)

// cmdAuth runs a SASL exchange (RFC 4954).
func (c *session) cmdAuth(arg string) *reply {
	switch {
	// No EHLO required first: the seeds' sendmail transcript and Apache James' authplain test send AUTH right after
	// the greeting, and RFC 4954 does not make the server refuse it.
	case c.user != nil:
		return &reply{503, "5.5.1", "Error: already authenticated"}
	case c.tx != nil:
		return &reply{503, "5.5.1", "Error: AUTH not permitted during a mail transaction"} // RFC 4954 4
	case !c.authAllowed():
		return &reply{538, "5.7.11", "Encryption required for requested authentication mechanism"} // RFC 4954 4
	}
	mech, initial, hasInitial := strings.Cut(arg, " ")
	mech = strings.ToUpper(mech)
	var user store.User
	server, err := c.opts().Auth.SASLConn(c.ctx, auth.SASLRequest{IP: c.ip, Mech: mech, TLS: c.tlsState(),
		OnSuccess: func(u store.User) { user = u }})
	if err != nil {
		return &reply{504, "5.5.4", "Unrecognized authentication type"}
	}
	var resp []byte
	if hasInitial {
		if resp, err = decodeSASL(initial); err != nil {
			return &reply{501, "5.5.2", "Cannot decode response"}
		}
	}
	for {
		challenge, done, err := server.Next(resp)
		if err != nil {
			if errors.Is(err, auth.ErrLockedOut) {
				// RFC 4954 6: 454 4.7.0 temporary authentication failure.
				return &reply{454, "4.7.0", "Temporary authentication failure"}
			}
			c.mailLog(maillog.Event{Event: "rejected", Status: "535 5.7.8", Detail: "authentication failed"})
			return &reply{535, "5.7.8", "Authentication credentials invalid"}
		}
		if done {
			break
		}
		c.send(reply{334, "", base64.StdEncoding.EncodeToString(challenge)})
		line, tooLong, err := c.readSASLLine()
		if err != nil {
			return &reply{421, "4.4.2", "Error reading response"}
		}
		if tooLong {
			return &reply{500, "5.5.6", "Authentication exchange line too long"}
		}
		if line == "*" {
			return &reply{501, "5.0.0", "Authentication cancelled"} // RFC 4954 4
		}
		if resp, err = decodeSASL(line); err != nil {
			return &reply{501, "5.5.2", "Cannot decode response"}
		}
	}
	c.user = &user
	if c.fs != nil {
		c.fs.SetAuthUser(user.Address)
	}
	c.log = c.log.With("user", user.Address)
	c.log.Info("authenticated", "mech", mech)
	return &reply{235, "2.7.0", "Authentication successful"}
}

// tlsState returns the state of the session's TLS layer, nil before STARTTLS.
func (c *session) tlsState() *tls.ConnectionState {
	tc, ok := c.conn.(*tls.Conn)
	if !ok {
		return nil
	}
	cs := tc.ConnectionState()
	return &cs
}

func (c *session) readSASLLine() (string, bool, error) {
	if err := c.flush(); err != nil {
		return "", false, err
	}
	c.conn.SetReadDeadline(time.Now().Add(c.opts().ReadTimeout))
	return readLine(c.br, 12288) // RFC 4954 4: at least 12288 octets
}

func decodeSASL(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

// parsePath parses "FROM:<addr> params" leniently: space after the colon and missing angle brackets are accepted,
// as Postfix does by default (strict_rfc821_envelopes = no).
func parsePath(arg, keyword string) (path string, params []string, ok bool) {
	if len(arg) < len(keyword) || !strings.EqualFold(arg[:len(keyword)], keyword) {
		return "", nil, false
	}
	rest := strings.TrimLeft(arg[len(keyword):], " ")
	if strings.HasPrefix(rest, "<") {
		end := strings.IndexByte(rest, '>')
		if end < 0 {
			return "", nil, false
		}
		path, rest = rest[1:end], rest[end+1:]
		if rest != "" && rest[0] != ' ' {
			return "", nil, false
		}
	} else {
		path, rest, _ = strings.Cut(rest, " ")
		if path == "" {
			return "", nil, false
		}
	}
	return path, strings.Fields(rest), true
}

// cmdMail starts a transaction (RFC 5321 4.1.1.2).
func (c *session) cmdMail(arg string) *reply {
	switch {
	// HELO is not required before MAIL, like Postfix's default (smtpd_helo_required = no) and sendmail in the seeds.
	case c.tx != nil:
		return &reply{503, "5.5.1", "Error: nested MAIL command"}
	case c.opts().Mode != ModeMX && c.user == nil:
		return &reply{530, "5.7.0", "Authentication required"} // RFC 4954 6
	}
	path, params, ok := parsePath(arg, "FROM:")
	if !ok {
		return &reply{501, "5.5.4", "Syntax: MAIL FROM:<address>"}
	}
	tx := &transaction{env: mail.Envelope{ReceivedAt: time.Now(), RemoteIP: c.ip, Helo: c.helo, TLS: c.tls}}
	if path != "" {
		from, err := mail.ParseAddress(path)
		if err != nil {
			return &reply{501, "5.1.7", "Bad sender address syntax"}
		}
		tx.env.From = from
	}
	if r := c.mailParams(tx, params); r != nil {
		return r
	}
	if !tx.env.SMTPUTF8 && !isASCII(path) {
		return utf8Required()
	}
	if r := c.checkSender(tx); r != nil {
		return r
	}
	// The queue ID exists from MAIL on, so the mail log lines of a refused MAIL or RCPT carry it.
	tx.env.QueueID = newQueueID()
	if c.fs != nil && !tx.discard {
		c.tx = tx // for the mail log line
		r := c.filterReply("mail", c.fs.Mail(c.ctx, tx.env.QueueID, tx.env.From), "", false)
		c.tx = nil
		if r != nil {
			c.fs.Reset()
			return r
		}
	}
	c.tx = tx
	return &reply{250, "2.1.0", "Ok"}
}

// mailParams applies MAIL parameters: SIZE (RFC 1870), BODY (RFC 6152/3030), SMTPUTF8 (RFC 6531), RET and ENVID
// (RFC 3461), REQUIRETLS (RFC 8689), AUTH (RFC 4954 5, accepted and ignored).
func (c *session) mailParams(tx *transaction, params []string) *reply {
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		switch strings.ToUpper(k) {
		case "SIZE":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return &reply{501, "5.5.4", "Bad SIZE parameter"}
			}
			if n > c.opts().MaxMessageBytes {
				return &reply{552, "5.3.4", "Message size exceeds fixed maximum message size"}
			}
			tx.env.Size = n
		case "BODY":
			switch strings.ToUpper(v) {
			case "7BIT", "8BITMIME", "BINARYMIME":
				tx.env.BodyType = strings.ToUpper(v)
			default:
				return &reply{501, "5.5.4", "Bad BODY parameter"}
			}
		case "SMTPUTF8":
			tx.env.SMTPUTF8 = true
		case "RET":
			switch strings.ToUpper(v) {
			case "FULL", "HDRS":
				tx.env.Ret = strings.ToUpper(v)
			default:
				return &reply{501, "5.5.4", "Bad RET parameter"}
			}
		case "ENVID":
			if v == "" || len(v) > 100 {
				return &reply{501, "5.5.4", "Bad ENVID parameter"}
			}
			tx.env.EnvID = v
		case "REQUIRETLS":
			// RFC 8689 4.1: only over TLS; the parameter takes no value.
			if !c.tls {
				return &reply{530, "5.7.10", "REQUIRETLS needs a TLS session"}
			}
			if v != "" {
				return &reply{501, "5.5.4", "REQUIRETLS takes no value"}
			}
			tx.env.RequireTLS = true
		case "AUTH":
		default:
			return &reply{555, "5.5.4", "Unsupported MAIL parameter " + k}
		}
	}
	return nil
}

// checkSender applies the access table and, for authenticated users, sender ownership.
func (c *session) checkSender(tx *transaction) *reply {
	if c.user != nil {
		if c.opts().Mode != ModeMX || !tx.env.From.IsZero() {
			ok, err := c.opts().Directory.MaySendAs(c.ctx, *c.user, tx.env.From)
			if err != nil {
				c.log.Error("sender check", "err", err)
				return &reply{451, "4.3.0", "Temporary lookup failure"}
			}
			if !ok {
				c.mailLog(maillog.Event{Event: "rejected", From: tx.env.From.String(), Status: "553 5.7.1", Detail: "sender not owned by user"})
				return &reply{553, "5.7.1", "Sender address not owned by user"}
			}
		}
		tx.env.AuthUser = c.user.Address
		return nil
	}
	// Like sendmail's check_mail ruleset, sender rules apply whatever the client IP's rule said.
	action := ""
	if !tx.env.From.IsZero() {
		var err error
		if action, err = c.opts().Directory.Access(c.ctx, netip.Addr{}, tx.env.From.Key(), tx.env.From.Domain); err != nil {
			return &reply{451, "4.3.0", "Temporary lookup failure"}
		}
	}
	if c.ipAction == store.ActionDiscard {
		action = store.ActionDiscard
	}
	switch action {
	case store.ActionReject:
		c.mailLog(maillog.Event{Event: "rejected", From: tx.env.From.String(), Status: "550 5.7.1", Detail: "sender rejected by access table"})
		return &reply{550, "5.7.1", "Sender address rejected: Access denied"}
	case store.ActionDiscard:
		tx.discard = true
	}
	return nil
}

// cmdRcpt adds a recipient (RFC 5321 4.1.1.3) under the relay policy.
func (c *session) cmdRcpt(arg string) *reply {
	if c.tx == nil {
		return &reply{503, "5.5.1", "Error: need MAIL command"}
	}
	path, params, ok := parsePath(arg, "TO:")
	if !ok || path == "" {
		return &reply{501, "5.5.4", "Syntax: RCPT TO:<address>"}
	}
	if !c.tx.env.SMTPUTF8 && !isASCII(path) {
		return utf8Required()
	}
	addr, err := mail.ParseAddress(path)
	if err != nil {
		return &reply{501, "5.1.3", "Bad recipient address syntax"}
	}
	if len(c.tx.env.Recipients) >= c.opts().MaxRecipients {
		return &reply{452, "4.5.3", "Error: too many recipients"} // RFC 5321 4.5.3.1.10
	}
	rcpt := mail.Recipient{Addr: addr}
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		switch strings.ToUpper(k) {
		case "NOTIFY": // RFC 3461 4.1
			rcpt.Notify = strings.Split(strings.ToUpper(v), ",")
			if !validNotify(rcpt.Notify) {
				return &reply{501, "5.5.4", "Bad NOTIFY parameter"}
			}
		case "ORCPT": // RFC 3461 4.2
			if !strings.Contains(v, ";") {
				return &reply{501, "5.5.4", "Bad ORCPT parameter"}
			}
			rcpt.ORcpt = v
		default:
			return &reply{555, "5.5.4", "Unsupported RCPT parameter " + k}
		}
	}
	if c.held != nil && !c.tx.discard {
		if r := c.filterReply("rcpt", *c.held, addr.String(), true); r != nil {
			return r
		}
	}
	if r := c.checkRecipient(addr); r != nil {
		c.mailLog(maillog.Event{QueueID: c.tx.env.QueueID, Event: "rejected", From: c.tx.env.From.String(), To: addr.String(),
			Status: strconv.Itoa(r.code) + " " + r.enhanced, Detail: r.text})
		return r
	}
	if c.fs != nil && !c.tx.discard {
		if r := c.filterReply("rcpt", c.fs.Rcpt(c.ctx, addr), addr.String(), false); r != nil {
			return r
		}
	}
	c.tx.env.Recipients = append(c.tx.env.Recipients, rcpt)
	return &reply{250, "2.1.5", "Ok"}
}

func validNotify(v []string) bool {
	for _, n := range v {
		switch n {
		case "SUCCESS", "FAILURE", "DELAY":
		case "NEVER":
			if len(v) > 1 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// checkRecipient: local users must exist; other domains need an authenticated client or a RELAY rule.
func (c *session) checkRecipient(addr mail.Address) *reply {
	local, err := c.opts().Directory.CheckRecipient(c.ctx, addr)
	switch {
	case errors.Is(err, directory.ErrUnknownRecipient):
		return &reply{550, "5.1.1", "Recipient address rejected: User unknown"}
	case err != nil:
		c.log.Error("recipient lookup", "err", err)
		return &reply{451, "4.3.0", "Temporary lookup failure"}
	case local || c.user != nil || c.ipAction == store.ActionRelay:
		return nil
	}
	// RFC 5321 3.6.2: no open relay.
	return &reply{554, "5.7.1", "Relay access denied"}
}

// utf8Required refuses a non-ASCII address in a transaction that did not declare SMTPUTF8: RFC 6531 3.4 lets
// internationalized addresses appear only after MAIL ... SMTPUTF8; the reply is Postfix's (RFC 6531 3.6.1 code).
func utf8Required() *reply {
	return &reply{553, "5.6.7", "Must declare SMTPUTF8 to send unicode address"}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
