package imapserver

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/postern/postern/internal/auth"
	"github.com/postern/postern/internal/store"
)

// command is one entry of the command table.
type command struct {
	states state
	fn     func(c *session, tag string, p *parser) error
	// noExpunge: no untagged EXPUNGE may be sent while this command is answered, because the client may be
	// counting on sequence numbers (RFC 9051 7.5.1: FETCH, STORE, SEARCH; likewise SORT and THREAD).
	noExpunge bool
	// ownPoll: no poll for news before the command: it reports them itself, with the EXPUNGEs first (NOOP,
	// CHECK), or it ends the selection or the session, so they are not worth sending.
	ownPoll bool
}

// commands maps a command name ("FETCH", "UID FETCH") to its handler.
var commands = map[string]command{
	"CAPABILITY":   {states: anyState, fn: (*session).cmdCapability},
	"NOOP":         {states: anyState, fn: (*session).cmdNoop, ownPoll: true},
	"LOGOUT":       {states: anyState, fn: (*session).cmdLogout, ownPoll: true},
	"ID":           {states: anyState, fn: (*session).cmdID},
	"STARTTLS":     {states: stateNotAuth, fn: (*session).cmdStartTLS},
	"LOGIN":        {states: stateNotAuth, fn: (*session).cmdLogin},
	"AUTHENTICATE": {states: stateNotAuth, fn: (*session).cmdAuthenticate},
	"ENABLE":       {states: authedState, fn: (*session).cmdEnable},
	"COMPRESS":     {states: authedState, fn: (*session).cmdCompress},
	"SELECT":       {states: authedState, fn: (*session).cmdSelect, ownPoll: true},
	"EXAMINE":      {states: authedState, fn: (*session).cmdSelect, ownPoll: true},
	"CREATE":       {states: authedState, fn: (*session).cmdCreate},
	"DELETE":       {states: authedState, fn: (*session).cmdDelete},
	"RENAME":       {states: authedState, fn: (*session).cmdRename},
	"SUBSCRIBE":    {states: authedState, fn: (*session).cmdSubscribe},
	"UNSUBSCRIBE":  {states: authedState, fn: (*session).cmdSubscribe},
	"LIST":         {states: authedState, fn: (*session).cmdList},
	"LSUB":         {states: authedState, fn: (*session).cmdLsub},
	"NAMESPACE":    {states: authedState, fn: (*session).cmdNamespace},
	"STATUS":       {states: authedState, fn: (*session).cmdStatus},
	"APPEND":       {states: authedState, fn: (*session).cmdAppend},
	"IDLE":         {states: authedState, fn: (*session).cmdIdle},
	"GETQUOTA":     {states: authedState, fn: (*session).cmdGetQuota},
	"GETQUOTAROOT": {states: authedState, fn: (*session).cmdGetQuotaRoot},
	"SETQUOTA":     {states: authedState, fn: (*session).cmdSetQuota},
	"CHECK":        {states: stateSelected, fn: (*session).cmdNoop, ownPoll: true},
	"CLOSE":        {states: stateSelected, fn: (*session).cmdClose, ownPoll: true},
	"UNSELECT":     {states: stateSelected, fn: (*session).cmdClose, ownPoll: true},
	"EXPUNGE":      {states: stateSelected, fn: (*session).cmdExpunge},
	"UID EXPUNGE":  {states: stateSelected, fn: (*session).cmdExpunge},
	"SEARCH":       {states: stateSelected, fn: (*session).cmdSearch, noExpunge: true},
	"UID SEARCH":   {states: stateSelected, fn: (*session).cmdSearch},
	"FETCH":        {states: stateSelected, fn: (*session).cmdFetch, noExpunge: true},
	"UID FETCH":    {states: stateSelected, fn: (*session).cmdFetch},
	"STORE":        {states: stateSelected, fn: (*session).cmdStore, noExpunge: true},
	"UID STORE":    {states: stateSelected, fn: (*session).cmdStore},
	"COPY":         {states: stateSelected, fn: (*session).cmdCopy},
	"UID COPY":     {states: stateSelected, fn: (*session).cmdCopy},
	"MOVE":         {states: stateSelected, fn: (*session).cmdCopy},
	"UID MOVE":     {states: stateSelected, fn: (*session).cmdCopy},
	"SORT":         {states: stateSelected, fn: (*session).cmdSort, noExpunge: true},
	"UID SORT":     {states: stateSelected, fn: (*session).cmdSort},
	"THREAD":       {states: stateSelected, fn: (*session).cmdThread, noExpunge: true},
	"UID THREAD":   {states: stateSelected, fn: (*session).cmdThread},
}

// isUID reports whether a command name is a UID command.
func isUID(name string) bool { return strings.HasPrefix(name, "UID ") }

// capabilities lists what this session may use now (RFC 9051 7.2.2).
func (c *session) capabilities() []string {
	caps := []string{"IMAP4rev1", "IMAP4rev2"}
	if c.opts().TLSConfig != nil && !c.tls {
		caps = append(caps, "STARTTLS")
	}
	if c.state == stateNotAuth {
		if c.authAllowed() {
			for _, m := range c.opts().Auth.MechanismsFor(c.tlsState()) {
				caps = append(caps, "AUTH="+m)
			}
			caps = append(caps, "SASL-IR")
		} else {
			caps = append(caps, "LOGINDISABLED")
		}
	}
	caps = append(caps, "LITERAL+", "ENABLE", "ID", "IDLE", "NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE", "CHILDREN",
		"LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE", "CREATE-SPECIAL-USE", "CONDSTORE", "QRESYNC", "ESEARCH",
		"SEARCHRES", "SORT", "SORT=DISPLAY", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "QUOTA",
		"QUOTA=RES-STORAGE", fmt.Sprintf("APPENDLIMIT=%d", c.opts().MaxMessageBytes), "MULTIAPPEND", "BINARY",
		"UTF8=ACCEPT", "STATUS=SIZE", "SAVEDATE", "WITHIN")
	if !c.compress {
		caps = append(caps, "COMPRESS=DEFLATE")
	}
	return caps
}

// authAllowed: passwords only over TLS unless the admin allowed plaintext (loopback is not exempt).
func (c *session) authAllowed() bool { return c.tls || c.opts().AllowPlaintextAuth }

func (c *session) cmdCapability(tag string, p *parser) error {
	p.end()
	if p.err != nil {
		return p.err
	}
	c.writef("* CAPABILITY %s", strings.Join(c.capabilities(), " "))
	return nil
}

// cmdNoop is NOOP and CHECK: the tagged response carries whatever changed (RFC 9051 6.1.2).
func (c *session) cmdNoop(tag string, p *parser) error {
	p.end()
	if p.err != nil {
		return p.err
	}
	if c.sel != nil {
		c.pollUpdates(true, true)
	}
	return nil
}

func (c *session) cmdLogout(tag string, p *parser) error {
	p.end()
	if p.err != nil {
		return p.err
	}
	c.writef("* BYE %s logging out", c.opts().Hostname)
	c.writef("%s OK LOGOUT completed", tag)
	return errLogout
}

// cmdID answers RFC 2971 ID; the client's parameters are logged, not trusted.
func (c *session) cmdID(tag string, p *parser) error {
	p.sp()
	var params []string
	if p.has("(") {
		for p.ok() && p.peek() != ')' {
			if len(params) > 0 {
				p.sp()
			}
			k := p.str()
			p.sp()
			v, _ := p.nstring()
			if len(params) < 60 {
				params = append(params, k, v)
			}
		}
		p.expect(")")
	} else {
		p.expect("NIL")
	}
	p.end()
	if p.err != nil {
		return p.err
	}
	if len(params) > 0 {
		c.log.Debug("client ID", "id", params)
	}
	c.writef(`* ID ("name" "Postern" "vendor" "Postern")`)
	return nil
}

func (c *session) cmdStartTLS(tag string, p *parser) error {
	p.end()
	switch {
	case p.err != nil:
		return p.err
	case c.tls:
		return bad("", "TLS is already active")
	case c.opts().TLSConfig == nil:
		return bad("", "STARTTLS is not available")
	}
	// RFC 9051 6.2.1 / CVE-2011-0411 class: commands pipelined after STARTTLS were sent in plaintext; drop them.
	if n := c.br.Buffered(); n > 0 {
		c.br.Discard(n)
	}
	c.writef("%s OK Begin TLS negotiation now", tag)
	if err := c.startTLS(); err != nil {
		return errLogout
	}
	return errAnswered
}

// errAnswered tells finish that the handler already sent the tagged response.
var errAnswered = errors.New("started TLS")

func (c *session) cmdLogin(tag string, p *parser) error {
	p.sp()
	user := p.astring()
	p.sp()
	pass := p.astring()
	p.end()
	if p.err != nil {
		return p.err
	}
	if !c.authAllowed() {
		return no("PRIVACYREQUIRED", "LOGIN is disabled before STARTTLS") // RFC 9051 6.2.3, LOGINDISABLED
	}
	u, err := c.opts().Auth.Authenticate(c.ctx, c.ip, user, pass)
	if err != nil {
		return c.authFailed(err)
	}
	return c.loggedIn(u)
}

// authFailed counts a failed attempt and answers it; after MaxAuthFailures the session ends.
func (c *session) authFailed(err error) error {
	if !errors.Is(err, auth.ErrInvalidCredentials) && !errors.Is(err, auth.ErrLockedOut) {
		c.log.Error("authentication", "err", err)
		return no("UNAVAILABLE", "Authentication is temporarily unavailable")
	}
	c.authFails++
	if c.authFails >= c.opts().MaxAuthFailures {
		c.bye = "Too many authentication failures" // after the tagged NO, then the connection closes
		c.state = stateLogout
	}
	return no("AUTHENTICATIONFAILED", "Authentication failed")
}

func (c *session) loggedIn(u store.User) error {
	c.user, c.state = u, stateAuth
	c.log = c.log.With("user", u.Address)
	c.log.Info("logged in")
	c.okCode = "CAPABILITY " + strings.Join(c.capabilities(), " ")
	c.okText = "Logged in"
	return nil
}

// cmdAuthenticate runs a SASL exchange (RFC 9051 6.2.2, SASL-IR RFC 4959).
func (c *session) cmdAuthenticate(tag string, p *parser) error {
	p.sp()
	mech := p.atom()
	irText, hasIR := "", false
	if p.ok() && p.peek() == ' ' {
		p.sp()
		irText = p.take(func(b byte) bool { return isAtomChar(b) || b == '=' }, "initial response")
		hasIR = true
	}
	p.end()
	if p.err != nil {
		return p.err
	}
	if !c.authAllowed() {
		return no("PRIVACYREQUIRED", "Authentication is disabled before STARTTLS")
	}
	var user store.User
	ok := false
	srv, err := c.opts().Auth.SASLConn(c.ctx, auth.SASLRequest{IP: c.ip, Mech: mech, TLS: c.tlsState(),
		OnSuccess: func(u store.User) { user, ok = u, true }})
	if err != nil {
		// RFC 9051 6.2.2: NO for a mechanism the server does not support, whatever the initial response.
		return no("CANNOT", "Unsupported authentication mechanism")
	}
	var resp []byte // nil: no initial response; empty: "=" (RFC 4959 3)
	if hasIR {
		resp = []byte{}
		if irText != "=" {
			if resp, err = base64.StdEncoding.DecodeString(irText); err != nil {
				return bad("", "Initial response is not base64")
			}
		}
	}
	for {
		challenge, done, err := srv.Next(resp)
		if err != nil {
			return c.authFailed(err)
		}
		if done {
			break
		}
		c.writef("+ %s", base64.StdEncoding.EncodeToString(challenge))
		if err := c.flush(); err != nil {
			return &ioError{err}
		}
		line, tooLong, err := c.src.readLine()
		if err != nil {
			return &ioError{err}
		}
		if tooLong {
			return bad("", "SASL response too long")
		}
		if string(line) == "*" {
			return bad("", "Authentication cancelled") // RFC 9051 6.2.2
		}
		if resp, err = base64.StdEncoding.DecodeString(string(line)); err != nil {
			return bad("", "SASL response is not base64")
		}
	}
	if !ok {
		return c.authFailed(auth.ErrInvalidCredentials)
	}
	return c.loggedIn(user)
}

// cmdEnable turns on extensions (RFC 5161, RFC 9051 6.3.1).
func (c *session) cmdEnable(tag string, p *parser) error {
	p.sp()
	var names []string
	for p.ok() && !p.atEnd() {
		if len(names) > 0 {
			p.sp()
		}
		names = append(names, p.atom())
	}
	if p.ok() && len(names) == 0 {
		p.fail("ENABLE needs a capability")
	}
	if p.err != nil {
		return p.err
	}
	var enabled []string
	for _, n := range names {
		switch strings.ToUpper(n) {
		case "IMAP4REV2":
			if !c.rev2 {
				c.rev2 = true
				enabled = append(enabled, "IMAP4rev2")
			}
		case "CONDSTORE":
			if !c.condstore {
				c.condstore = true
				enabled = append(enabled, "CONDSTORE")
			}
		case "QRESYNC":
			if !c.qresync {
				c.qresync, c.condstore = true, true // RFC 7162 3.2.3: QRESYNC implies CONDSTORE
				enabled = append(enabled, "QRESYNC")
			}
		case "UTF8=ACCEPT":
			if !c.utf8 {
				c.utf8 = true
				enabled = append(enabled, "UTF8=ACCEPT")
			}
		}
	}
	if len(enabled) > 0 {
		c.writef("* ENABLED %s", strings.Join(enabled, " "))
	} else {
		c.writef("* ENABLED")
	}
	return nil
}

// cmdCompress turns on COMPRESS=DEFLATE (RFC 4978).
func (c *session) cmdCompress(tag string, p *parser) error {
	p.sp()
	mech := p.atom()
	p.end()
	switch {
	case p.err != nil:
		return p.err
	case !strings.EqualFold(mech, "DEFLATE"):
		return bad("", "Unknown compression mechanism")
	case c.compress:
		return no("COMPRESSIONACTIVE", "Compression is already active")
	}
	c.writef("%s OK DEFLATE active", tag)
	if err := c.startCompress(); err != nil {
		return errLogout
	}
	return errAnswered
}
