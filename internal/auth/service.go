package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/store"
)

// Sentinel errors of Authenticate.
var (
	ErrInvalidCredentials = errors.New("invalid credentials")
	ErrLockedOut          = errors.New("too many failed logins from this address")
)

// UserStore is what the Service needs of the directory store (a subset of store.DirectoryStore). GetUser takes
// the mail.Address.Key form and returns an error wrapping store.ErrNotFound for an unknown user.
type UserStore interface {
	GetUser(ctx context.Context, address string) (store.User, error)
}

// Options configure a Service.
type Options struct {
	Users   UserStore
	Lockout *Lockout // nil: no lockout
	// FailureDelay is the time every failed attempt takes, whatever failed, so timing tells nothing; default 1s,
	// negative: no delay.
	FailureDelay time.Duration
	Logger       *slog.Logger
}

// Service authenticates users.
type Service struct {
	opts  Options
	dummy string // a real hash to verify against for unknown users (same cost as a known one)
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
	dummy, err := HashPassword("dummy password for timing")
	if err != nil {
		return nil, err
	}
	return &Service{opts: o, dummy: dummy}, nil
}

// Authenticate checks a username (an address, any case) and password from a client at ip. It returns an error
// wrapping ErrInvalidCredentials for a wrong username or password, ErrLockedOut when ip failed too often (the
// password is then not checked), or a store error. Every failure takes FailureDelay plus jitter from the start
// of the call, whatever went wrong.
func (s *Service) Authenticate(ctx context.Context, ip netip.Addr, username, password string) (store.User, error) {
	start := time.Now()
	u, err := s.check(ctx, ip, username, password)
	log := s.opts.Logger.With("remote", ip.String(), "user", logName(username))
	switch {
	case err == nil:
		s.opts.Lockout.Succeed(ip)
		return u, nil
	case errors.Is(err, ErrInvalidCredentials):
		s.opts.Lockout.Fail(ip)
		log.Warn("authentication failed", "err", err)
	case errors.Is(err, ErrLockedOut):
		log.Warn("authentication refused: client locked out")
	default: // a store failure is not the client's fault: it does not count towards the lockout
		log.Error("authentication failed: user lookup", "err", err)
	}
	s.pad(ctx, start)
	return store.User{}, err
}

// check does the work of Authenticate, without the padding.
func (s *Service) check(ctx context.Context, ip netip.Addr, username, password string) (store.User, error) {
	if s.opts.Lockout.Locked(ip) {
		return store.User{}, ErrLockedOut
	}
	if len(password) > maxCredential {
		return store.User{}, fmt.Errorf("%w: password longer than %d octets", ErrInvalidCredentials, maxCredential)
	}
	hash, known := s.dummy, false
	var u store.User
	if addr, err := mail.ParseAddress(username); err == nil {
		u, err = s.opts.Users.GetUser(ctx, addr.Key())
		switch {
		case err == nil:
			hash, known = u.PasswordHash, true
		case !errors.Is(err, store.ErrNotFound):
			return store.User{}, fmt.Errorf("look up user %q: %w", addr.Key(), err)
		}
	}
	// An unknown user still pays for one hash verification, so response time does not reveal who exists.
	ok, err := VerifyPassword(hash, password)
	if err != nil { // a stored hash we cannot use: the account cannot log in
		return store.User{}, fmt.Errorf("%w: stored password hash: %v", ErrInvalidCredentials, err)
	}
	if !ok || !known {
		return store.User{}, ErrInvalidCredentials
	}
	return u, nil
}

// pad sleeps until FailureDelay (plus up to 10% jitter) has passed since start, or ctx ends.
func (s *Service) pad(ctx context.Context, start time.Time) {
	if s.opts.FailureDelay < 0 {
		return
	}
	wait := s.opts.FailureDelay - time.Since(start)
	if j := s.opts.FailureDelay / 10; j > 0 {
		wait += rand.N(j)
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

// Mechanisms lists the SASL mechanisms SASL supports, strongest first.
func (s *Service) Mechanisms() []string { return []string{MechPlain, MechLogin} }

// SASL returns a server for mech (PLAIN or LOGIN, any case) that authenticates through Authenticate, so lockout
// and failure timing apply; onSuccess runs with the authenticated user before the server reports done.
func (s *Service) SASL(ctx context.Context, ip netip.Addr, mech string, onSuccess func(store.User)) (sasl.Server, error) {
	return newSASLServer(mech, func(username, password string) error {
		u, err := s.Authenticate(ctx, ip, username, password)
		if err != nil {
			return err
		}
		if onSuccess != nil {
			onSuccess(u)
		}
		return nil
	})
}
