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

// UserStore is what the Service needs of the directory store.
type UserStore interface {
	GetUser(ctx context.Context, address string) (store.User, error)
}

// Options configure a Service.
type Options struct {
	Users   UserStore
	Lockout *Lockout // nil: no lockout
	// FailureDelay is the time every failed attempt takes, whatever failed, so timing tells nothing; default 1s.
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

// Authenticate checks a username (an address, any case) and password from a client at ip.
func (s *Service) Authenticate(ctx context.Context, ip netip.Addr, username, password string) (store.User, error) {
	start := time.Now()
	u, err := s.check(ctx, ip, username, password)
	if err == nil {
		s.opts.Lockout.Succeed(ip)
		return u, nil
	}
	if !errors.Is(err, ErrLockedOut) {
		s.opts.Lockout.Fail(ip)
	}
	s.opts.Logger.Warn("authentication failed", "remote", ip.String(), "user", username, "err", err)
	// Pad every failure to the same budget plus jitter.
	wait := s.opts.FailureDelay - time.Since(start) + rand.N(s.opts.FailureDelay/10+1)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return store.User{}, err
}

func (s *Service) check(ctx context.Context, ip netip.Addr, username, password string) (store.User, error) {
	if s.opts.Lockout.Locked(ip) {
		return store.User{}, ErrLockedOut
	}
	hash := s.dummy
	addr, perr := mail.ParseAddress(username)
	var u store.User
	var uerr error = perr
	if perr == nil {
		u, uerr = s.opts.Users.GetUser(ctx, addr.Key())
		if uerr == nil {
			hash = u.PasswordHash
		} else if !errors.Is(uerr, store.ErrNotFound) {
			return store.User{}, fmt.Errorf("look up user: %w", uerr)
		}
	}
	ok, err := VerifyPassword(hash, password)
	if err != nil {
		return store.User{}, fmt.Errorf("%w: %v", ErrInvalidCredentials, err)
	}
	if !ok || uerr != nil {
		return store.User{}, ErrInvalidCredentials
	}
	return u, nil
}

// Mechanisms lists the SASL mechanisms SASL supports.
func (s *Service) Mechanisms() []string { return []string{"PLAIN", "LOGIN"} }

// SASL returns a server for mech; onSuccess runs with the authenticated user.
func (s *Service) SASL(ctx context.Context, ip netip.Addr, mech string, onSuccess func(store.User)) (sasl.Server, error) {
	check := func(username, password string) error {
		u, err := s.Authenticate(ctx, ip, username, password)
		if err != nil {
			return err
		}
		onSuccess(u)
		return nil
	}
	switch mech {
	case "PLAIN":
		// RFC 4616 2: an authzid other than the authcid would mean acting for someone else; we do not allow proxying.
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return ErrInvalidCredentials
			}
			return check(username, password)
		}), nil
	case "LOGIN":
		return NewLoginServer(check), nil
	}
	return nil, fmt.Errorf("unsupported SASL mechanism %q", mech)
}
