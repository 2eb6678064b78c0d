package pop3server

import (
	"encoding/base64"
	"errors"

	"github.com/postern/postern/internal/auth"
	"github.com/postern/postern/internal/store"
)

// refusePlaintext is the answer to USER, PASS and AUTH before TLS when plaintext passwords are not allowed
// (RFC 2595 4 leaves the text to the server; the [AUTH] code is what Dovecot sends here).
const refusePlaintext = codeAuth + "Plaintext authentication disallowed on non-secure connection; use STLS"

// cmdUser takes the name for PASS (RFC 1939 7). The reply does not say whether the user exists.
func (c *session) cmdUser(cmd command) error {
	c.userArg = ""
	switch {
	case !c.authAllowed():
		return c.fail(refusePlaintext)
	case len(cmd.args) != 1:
		return c.fail("Syntax: USER name")
	}
	c.userArg = cmd.args[0]
	c.ok("Send your password")
	return nil
}

// cmdPass checks the password for the name of USER. RFC 1939 7: the argument is everything after "PASS ",
// spaces included.
func (c *session) cmdPass(cmd command) error {
	name := c.userArg
	c.userArg = ""
	switch {
	case !c.authAllowed():
		return c.fail(refusePlaintext)
	case name == "":
		return c.fail("PASS must follow USER")
	case cmd.rest == "":
		return c.fail("Syntax: PASS password")
	}
	u, err := c.opts().Auth.Authenticate(c.ctx, c.ip, name, cmd.rest)
	if err != nil {
		return c.authFailed(err)
	}
	return c.openDrop(u)
}

// cmdAuth runs a SASL exchange (RFC 5034 4).
func (c *session) cmdAuth(cmd command) error {
	c.userArg = ""
	if !c.authAllowed() {
		return c.fail(refusePlaintext)
	}
	switch len(cmd.args) {
	case 0:
		// Not in RFC 5034, but Outlook and others send a bare AUTH to list the mechanisms (RFC 1734's servers
		// and Dovecot answer it).
		c.multi("List of SASL mechanisms follows", c.opts().Auth.MechanismsFor(c.tlsState()))
		return nil
	case 1, 2:
	default:
		return c.fail("Syntax: AUTH mechanism [initial-response]")
	}
	var user store.User
	server, err := c.opts().Auth.SASLConn(c.ctx, auth.SASLRequest{IP: c.ip, Mech: cmd.args[0], TLS: c.tlsState(),
		OnSuccess: func(u store.User) { user = u }})
	if err != nil {
		return c.fail("Unsupported authentication mechanism")
	}
	var resp []byte
	if len(cmd.args) == 2 {
		if resp, err = decodeSASL(cmd.args[1]); err != nil {
			return c.fail("Invalid base64 in initial response")
		}
	}
	for {
		challenge, done, err := server.Next(resp)
		if err != nil {
			return c.authFailed(err)
		}
		if done {
			break
		}
		// RFC 5034 4: a continuation is "+" SP base64 (an empty challenge leaves nothing after the space).
		c.bw.WriteString("+ " + base64.StdEncoding.EncodeToString(challenge) + "\r\n")
		c.setBusy(false) // waiting for the client: Shutdown may interrupt
		line, tooLong, err := c.readLine(maxSASLLine)
		c.setBusy(true)
		switch {
		case err != nil:
			return err
		case tooLong:
			return c.fail("Authentication line too long")
		case line == "*":
			c.errResp("Authentication cancelled") // RFC 5034 4: the server MUST reject with -ERR
			return nil
		}
		if resp, err = decodeSASL(line); err != nil {
			return c.fail("Invalid base64 in authentication response")
		}
	}
	return c.openDrop(user)
}

// decodeSASL decodes a response; "=" is an empty initial response (RFC 5034 4).
func decodeSASL(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

// authFailed answers a failed login. Wrong credentials get [AUTH] (RFC 3206 4), a locked-out address
// [LOGIN-DELAY] (RFC 2449 8.1.1: wait before logging in again), a store failure [SYS/TEMP]. After
// MaxAuthFailures failures the connection is closed; the auth service's lockout counts failures across
// connections and protocols.
func (c *session) authFailed(err error) error {
	var text string
	switch {
	case errors.Is(err, auth.ErrLockedOut):
		text = codeDelay + "Too many failed logins from your address, try again later"
	case errors.Is(err, auth.ErrInvalidCredentials):
		text = codeAuth + "Authentication failed"
	default:
		c.log.Error("authentication", "err", err)
		c.errResp(codeSysTemp + "Authentication temporarily unavailable")
		return nil
	}
	c.authFailures++
	if c.authFailures >= c.opts().MaxAuthFailures {
		c.errResp(text + "; too many failures, closing connection")
		return errCloseSession
	}
	c.errResp(text)
	return nil
}
