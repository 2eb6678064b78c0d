package auth

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/store"
)

// Sentinel errors of Authenticate and the SASL servers.
var (
	ErrInvalidCredentials = errors.New("invalid credentials")
	ErrLockedOut          = errors.New("too many failed logins from this address")
)

// UserStore is what the Service needs of the directory store (a subset of store.DirectoryStore). GetUser takes
// the mail.Address.Key form and returns an error wrapping store.ErrNotFound for an unknown user. When it also
// implements CredentialWriter, the Service keeps stored credential sets current (see Options.UpgradeCredentials).
type UserStore interface {
	GetUser(ctx context.Context, address string) (store.User, error)
}

// CredentialWriter replaces a user's stored credential set (store.DirectoryStore.SetPassword).
type CredentialWriter interface {
	SetPassword(ctx context.Context, address, hash string) error
}

// Options configure a Service. The zero value of every field but Users works and offers PLAIN and LOGIN only.
type Options struct {
	Users   UserStore
	Lockout *Lockout // nil: no lockout
	// FailureDelay is the time every failed attempt takes, whatever failed, so timing tells nothing; from the
	// third recent failure of the client or account on it doubles with each, up to 8 times. Default 1s, negative:
	// no delay.
	FailureDelay time.Duration
	Logger       *slog.Logger

	// SCRAM offers SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 5802, RFC 7677), and their -PLUS variants with channel
	// binding on TLS connections.
	SCRAM bool
	// CRAMMD5 offers CRAM-MD5 (RFC 2195); it needs a plaintext-equivalent secret, see credentials.go.
	CRAMMD5 bool
	// UpgradeCredentials rewrites a user's stored credential set at a successful password login when it does not
	// hold exactly the secrets Hash asks for: SCRAM secrets appear for users created before, and the CRAM-MD5
	// secret appears or disappears as the admin turns CRAM-MD5 on or off. Needs Users to be a CredentialWriter.
	UpgradeCredentials bool
	Hash               HashOptions
	// ClientCAs verify the TLS client certificates EXTERNAL accepts (RFC 4422 appendix A); nil: no EXTERNAL.
	ClientCAs *x509.CertPool
	// ServerCertificate returns the certificate the server sent on a connection, for the tls-server-end-point
	// channel binding (RFC 5929 4); nil: only tls-exporter (RFC 9266) is offered.
	ServerCertificate func(*tls.ConnectionState) *x509.Certificate
	// Hostname goes into CRAM-MD5 challenges (RFC 2195 2: a msg-id); default "localhost".
	Hostname string
}

// Service authenticates users.
type Service struct {
	opts   Options
	dummy  string // a real hash to verify against for unknown users (same cost as a known one)
	secret []byte // keys the fake SCRAM salts of unknown users, so they are stable but unpredictable
}

// New returns a Service.
func New(o Options) (*Service, error) {
	if o.Users == nil {
		return nil, errors.New("auth: no user store")
	}
	if o.FailureDelay == 0 {
		o.FailureDelay = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Hostname == "" {
		o.Hostname = "localhost"
	}
	dummy, err := hashArgon2id("dummy password for timing")
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("auth: secret: %w", err)
	}
	return &Service{opts: o, dummy: dummy, secret: secret}, nil
}

// Authenticate checks a username (an address, any case) and password from a client at ip. It returns an error
// wrapping ErrInvalidCredentials for a wrong username or password, ErrLockedOut when ip or the account failed too
// often (the password is then not checked), or a store error. Every failure takes FailureDelay (grown by recent
// failures) plus jitter from the start of the call, whatever went wrong.
func (s *Service) Authenticate(ctx context.Context, ip netip.Addr, username, password string) (store.User, error) {
	return s.attempt(ctx, ip, "password", username, func() (store.User, error) {
		return s.checkPassword(ctx, username, password)
	})
}

// attempt runs check for one authentication try through any mechanism, unless ip or the account is locked out,
// and does the bookkeeping every mechanism shares: lockout counting, the failure log line and the failure delay.
func (s *Service) attempt(ctx context.Context, ip netip.Addr, mech, username string, check func() (store.User, error)) (store.User, error) {
	start := time.Now()
	account := accountKey(username)
	var u store.User
	var err error
	switch {
	case s.opts.Lockout.Locked(ip):
		err = ErrLockedOut
	case s.opts.Lockout.AccountLocked(account, ip):
		err = fmt.Errorf("%w (the account failed too often)", ErrLockedOut)
	default:
		u, err = check()
	}
	factor := 1
	switch {
	case err == nil:
		s.opts.Lockout.SucceedAccount(accountKey(u.Address), ip)
		return u, nil
	case errors.Is(err, ErrInvalidCredentials):
		// The second failure in a row is still a typo; from the third on each one doubles the delay, up to 8 times.
		n := s.opts.Lockout.FailAccount(account, ip)
		factor = 1 << min(max(n-2, 0), 3)
		s.logFailure(ip, mech, username, err)
	case errors.Is(err, ErrLockedOut):
		s.opts.Logger.Warn("authentication refused", "remote", ip.String(), "mech", mech, "user", logName(username),
			"reason", err.Error())
	default: // a store failure is not the client's fault: it does not count towards the lockout
		s.opts.Logger.Error("authentication error", "remote", ip.String(), "mech", mech, "user", logName(username),
			"err", err)
	}
	s.pad(ctx, start, factor)
	return store.User{}, err
}

// logFailure writes the one line per failed authentication that contrib/fail2ban/filter.d/postern.conf matches.
// Its shape is a stable interface: the message, then remote as the first attribute (before anything the client
// chose, so a crafted username cannot plant another address where the filter looks); the other attributes follow.
// No secret is ever logged: reasons name what was wrong, never a value.
func (s *Service) logFailure(ip netip.Addr, mech, username string, err error) {
	s.opts.Logger.Warn("authentication failed", "remote", ip.String(), "mech", mech, "user", logName(username),
		"reason", reason(err))
}

// reason shortens an error for the failure line: the wrapped sentinel's text is implied by the message.
func reason(err error) string {
	r := strings.TrimPrefix(err.Error(), ErrInvalidCredentials.Error())
	r = strings.TrimPrefix(r, ": ")
	if r == "" {
		return "wrong username or password"
	}
	return r
}

// accountKey is the form of a username the per-account lockout counts under: the address key when it is one.
func accountKey(username string) string {
	if username == "" {
		return ""
	}
	if a, err := mail.ParseAddress(username); err == nil {
		return a.Key()
	}
	return logName(strings.ToLower(username))
}

// lookup finds the user a client named. ok is false for a name that is no address or no user; err is a store
// failure.
func (s *Service) lookup(ctx context.Context, username string) (u store.User, ok bool, err error) {
	addr, perr := mail.ParseAddress(username)
	if perr != nil {
		return store.User{}, false, nil
	}
	u, err = s.opts.Users.GetUser(ctx, addr.Key())
	switch {
	case err == nil:
		return u, true, nil
	case errors.Is(err, store.ErrNotFound):
		return store.User{}, false, nil
	}
	return store.User{}, false, fmt.Errorf("look up user %q: %w", addr.Key(), err)
}

// checkPassword verifies a password; on success it keeps the stored credential set current.
func (s *Service) checkPassword(ctx context.Context, username, password string) (store.User, error) {
	if len(password) > maxCredential {
		return store.User{}, fmt.Errorf("%w: password longer than %d octets", ErrInvalidCredentials, maxCredential)
	}
	u, known, err := s.lookup(ctx, username)
	if err != nil {
		return store.User{}, err
	}
	hash := s.dummy
	if known {
		hash = u.PasswordHash
	}
	// An unknown user still pays for one hash verification, so response time does not reveal who exists.
	ok, err := VerifyPassword(hash, password)
	if err != nil { // a stored hash we cannot use: the account cannot log in
		return store.User{}, fmt.Errorf("%w: stored password hash: %v", ErrInvalidCredentials, err)
	}
	if !ok || !known {
		return store.User{}, ErrInvalidCredentials
	}
	s.upgrade(ctx, u, password)
	return u, nil
}

// upgrade rewrites u's credential set when it lacks secrets the configured mechanisms need or holds a CRAM-MD5
// secret the admin no longer wants stored. The password was just verified, so the new secrets are right. A
// concurrent password change between the read and this write could be overwritten; the re-read just before
// writing makes that window small, and the admin's next `user passwd` fixes it.
func (s *Service) upgrade(ctx context.Context, u store.User, password string) {
	w, ok := s.opts.Users.(CredentialWriter)
	if !s.opts.UpgradeCredentials || !ok {
		return
	}
	c, err := parseCredentials(u.PasswordHash)
	if err == nil && c.satisfies(s.opts.Hash) {
		return
	}
	c.primary, _, _ = strings.Cut(u.PasswordHash, " ")
	nc, err := deriveExtras(c, password, s.opts.Hash)
	if err != nil {
		s.opts.Logger.Error("update stored credentials", "user", u.Address, "err", err)
		return
	}
	if cur, err := s.opts.Users.GetUser(ctx, u.Address); err != nil || cur.PasswordHash != u.PasswordHash {
		return
	}
	if err := w.SetPassword(ctx, u.Address, nc.String()); err != nil {
		s.opts.Logger.Error("update stored credentials", "user", u.Address, "err", err)
		return
	}
	s.opts.Logger.Info("stored credentials updated", "user", u.Address, "scram", nc.scram2 != nil, "cram_md5", nc.cram != nil)
}

// pad sleeps until factor × FailureDelay (plus up to 10% jitter) has passed since start, or ctx ends.
func (s *Service) pad(ctx context.Context, start time.Time, factor int) {
	if s.opts.FailureDelay < 0 {
		return
	}
	d := s.opts.FailureDelay * time.Duration(factor)
	wait := d - time.Since(start)
	if j := d / 10; j > 0 {
		wait += mrand.N(j)
	}
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// logName bounds what a client-chosen username may put in the log.
func logName(username string) string {
	const max = 128
	if len(username) > max {
		return username[:max] + "..."
	}
	return username
}
