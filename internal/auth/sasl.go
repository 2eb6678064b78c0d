package auth

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-sasl"

	"github.com/postern/postern/internal/mail"
)

// SASL mechanism names (RFC 4616; draft-murchison-sasl-login); the others are in credentials.go.
const (
	MechPlain = "PLAIN"
	MechLogin = "LOGIN"
)

// errMalformed is wrapped by errors for SASL messages that break the mechanism's syntax. It wraps
// ErrInvalidCredentials so protocol servers that test for that answer the usual failure.
var errMalformed = fmt.Errorf("%w: malformed SASL message", ErrInvalidCredentials)

// maxCredential bounds usernames and passwords: RFC 4616 2 allows 255 octets; we accept more, but not so much
// that hashing becomes a cost an attacker controls.
const maxCredential = 1024

// checkFunc verifies a username and password and reports the outcome.
type checkFunc func(username, password string) error

// newSASLServer returns the server for mech (any case), or an error for an unsupported one.
func newSASLServer(mech string, check checkFunc) (sasl.Server, error) {
	switch strings.ToUpper(mech) {
	case MechPlain:
		return &plainServer{check: check}, nil
	case MechLogin:
		return &loginServer{check: check}, nil
	}
	return nil, fmt.Errorf("unsupported SASL mechanism %q", mech)
}

// plainServer implements PLAIN (RFC 4616). go-sasl has one, but it reports a malformed message with done=false
// and an error that wraps nothing, and passes empty or non-UTF-8 identities on; this one refuses those before
// any credential check, with errors that wrap ErrInvalidCredentials.
type plainServer struct {
	check checkFunc
	done  bool
}

// Next takes the message [authzid] NUL authcid NUL passwd (RFC 4616 2). Without an initial response the server
// first sends an empty challenge (RFC 4422 5, RFC 4954 4: "334 ").
func (p *plainServer) Next(response []byte) (challenge []byte, done bool, err error) {
	if p.done {
		return nil, true, fmt.Errorf("%w: PLAIN exchange already finished", errMalformed)
	}
	if response == nil {
		return []byte{}, false, nil
	}
	p.done = true
	parts := bytes.Split(response, []byte{0})
	if len(parts) != 3 {
		return nil, true, fmt.Errorf("%w: PLAIN message has %d NULs, want 2", errMalformed, len(parts)-1)
	}
	authzid, authcid, passwd := string(parts[0]), string(parts[1]), string(parts[2])
	if err := checkPlain(authzid, authcid, passwd); err != nil {
		return nil, true, err
	}
	return nil, true, p.check(authcid, passwd)
}

// checkPlain applies RFC 4616 2 to a message go-sasl has split at its two NULs: authcid and passwd are
// 1*SAFE (non-empty UTF-8 without NUL), authzid may be empty. An authzid naming someone else would mean acting on
// their behalf (RFC 4616 2, "authorization identity"); we allow no proxying, so it must be empty or equal the
// authcid (compared as addresses, so case does not matter).
func checkPlain(authzid, authcid, passwd string) error {
	if err := checkCredential("authcid", authcid); err != nil {
		return err
	}
	if err := checkCredential("passwd", passwd); err != nil {
		return err
	}
	if !utf8.ValidString(authzid) {
		return fmt.Errorf("%w: authzid is not UTF-8", errMalformed)
	}
	if !sameIdentity(authzid, authcid) {
		return fmt.Errorf("%w: authorization identity differs from the authentication identity", ErrInvalidCredentials)
	}
	return nil
}

// sameIdentity reports whether an authorization identity is empty or names the authentication identity itself
// (compared as addresses when both are, so case does not matter): we allow no acting on behalf of someone else.
func sameIdentity(authzid, authcid string) bool {
	if authzid == "" || authzid == authcid {
		return true
	}
	z, zerr := mail.ParseAddress(authzid)
	c, cerr := mail.ParseAddress(authcid)
	return zerr == nil && cerr == nil && z.Key() == c.Key()
}

// checkCredential requires a non-empty, bounded UTF-8 string without NUL (RFC 4616 2 SAFE).
func checkCredential(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", errMalformed, what)
	case len(s) > maxCredential:
		return fmt.Errorf("%w: %s longer than %d octets", errMalformed, what, maxCredential)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not UTF-8", errMalformed, what)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: NUL in %s", errMalformed, what)
	}
	return nil
}

// loginServer implements the LOGIN mechanism (draft-murchison-sasl-login-00). go-sasl at the version in go.mod
// ships only a LOGIN *client* (its server was removed as obsolete), but Outlook, older Thunderbird and the seeds'
// telnet transcripts still use it, so it lives here.
type loginServer struct {
	check    checkFunc
	username string
	step     int // 0: start, 1: waiting for the username, 2: waiting for the password, 3: done
}

var (
	loginUsernameChallenge = []byte("Username:") // VXNlcm5hbWU6
	loginPasswordChallenge = []byte("Password:") // UGFzc3dvcmQ6
)

// Next runs one step. The draft has the server challenge "Username:" then "Password:"; a client may instead send
// the username as the initial response (AUTH LOGIN dXNlcjNAMTYzLmNvbQ== -> 334 UGFzc3dvcmQ6), as sendmail and
// Postfix accept. An empty initial response ("=") counts as none.
func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		if len(response) == 0 {
			l.step = 1
			return bytes.Clone(loginUsernameChallenge), false, nil
		}
		return l.takeUsername(response)
	case 1:
		return l.takeUsername(response)
	case 2:
		l.step = 3
		if err := checkCredential("password", string(response)); err != nil {
			return nil, true, err
		}
		return nil, true, l.check(l.username, string(response))
	}
	return nil, true, fmt.Errorf("%w: LOGIN exchange already finished", errMalformed)
}

func (l *loginServer) takeUsername(response []byte) ([]byte, bool, error) {
	if err := checkCredential("username", string(response)); err != nil {
		l.step = 3
		return nil, true, err
	}
	l.username = string(response)
	l.step = 2
	return bytes.Clone(loginPasswordChallenge), false, nil
}
