package auth

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/xdg-go/scram"

	"github.com/postern/postern/internal/store"
)

// SASLRequest describes one SASL exchange a protocol server starts for a client.
type SASLRequest struct {
	IP   netip.Addr
	Mech string // as the client named it; any case
	// TLS is the state of the connection's TLS layer, after the handshake; nil on a connection without TLS.
	// SCRAM-*-PLUS takes its channel binding from it and EXTERNAL the client certificate.
	TLS *tls.ConnectionState
	// OnSuccess runs with the authenticated user before the server reports done.
	OnSuccess func(store.User)
}

// MechanismsFor lists the SASL mechanisms to offer on a connection with TLS state tlsState (nil: no TLS),
// strongest first. Whether to allow authentication at all before TLS is the protocol server's decision
// (auth.allow_plaintext). Over TLS it adds SCRAM-*-PLUS when this connection can provide a channel binding and
// EXTERNAL when the client presented a certificate and client CAs are configured.
func (s *Service) MechanismsFor(tlsState *tls.ConnectionState) []string {
	var m []string
	if s.opts.SCRAM {
		if s.bindings(tlsState).available() {
			m = append(m, MechSCRAMSHA256Plus, MechSCRAMSHA1Plus)
		}
		m = append(m, MechSCRAMSHA256, MechSCRAMSHA1)
	}
	if s.opts.CRAMMD5 {
		m = append(m, MechCRAMMD5)
	}
	m = append(m, MechPlain, MechLogin)
	if s.opts.ClientCAs != nil && tlsState != nil && len(tlsState.PeerCertificates) > 0 {
		m = append(m, MechExternal)
	}
	return m
}

// SASLConn returns a server for r.Mech, which must be one MechanismsFor(r.TLS) lists. Every mechanism goes
// through the same lockout, failure delay and failure log line as Authenticate; errors wrap ErrInvalidCredentials
// or ErrLockedOut as Authenticate's do.
func (s *Service) SASLConn(ctx context.Context, r SASLRequest) (sasl.Server, error) {
	mech := strings.ToUpper(r.Mech)
	if !slices.Contains(s.MechanismsFor(r.TLS), mech) {
		return nil, fmt.Errorf("unsupported SASL mechanism %q", r.Mech)
	}
	done := func(u store.User) {
		if r.OnSuccess != nil {
			r.OnSuccess(u)
		}
	}
	switch mech {
	case MechPlain, MechLogin:
		return newSASLServer(mech, func(username, password string) error {
			u, err := s.attempt(ctx, r.IP, mech, username, func() (store.User, error) {
				return s.checkPassword(ctx, username, password)
			})
			if err == nil {
				done(u)
			}
			return err
		})
	case MechCRAMMD5:
		return s.newCRAM(ctx, r, done), nil
	case MechExternal:
		return s.newExternal(ctx, r, done), nil
	}
	return s.newSCRAM(ctx, r, mech, done), nil
}

func (s *Service) bindings(cs *tls.ConnectionState) bindings {
	return bindings{cs: cs, serverCert: s.opts.ServerCertificate}
}

func (s *Service) newCRAM(ctx context.Context, r SASLRequest, done func(store.User)) *cramServer {
	c := &cramServer{challenge: newCRAMChallenge(s.opts.Hostname)}
	c.verify = func(username string, digest []byte) error {
		u, err := s.attempt(ctx, r.IP, MechCRAMMD5, username, func() (store.User, error) {
			u, known, err := s.lookup(ctx, username)
			if err != nil {
				return store.User{}, err
			}
			var cred *cramCred
			if known {
				if creds, err := parseCredentials(u.PasswordHash); err == nil {
					cred = creds.cram
				}
			}
			ok, err := cramVerify(cred, c.challenge, digest)
			switch {
			case err != nil:
				return store.User{}, fmt.Errorf("%w: %v", ErrInvalidCredentials, err)
			case !ok && known && cred == nil:
				return store.User{}, fmt.Errorf("%w: no CRAM-MD5 secret stored (log in once with a password)", ErrInvalidCredentials)
			case !ok:
				return store.User{}, ErrInvalidCredentials
			}
			return u, nil
		})
		if err == nil {
			done(u)
		}
		return err
	}
	return c
}

func (s *Service) newSCRAM(ctx context.Context, r SASLRequest, mech string, done func(store.User)) *scramServer {
	hashName := "sha-256"
	if strings.HasPrefix(mech, MechSCRAMSHA1) {
		hashName = "sha-1"
	}
	b := s.bindings(r.TLS)
	iters := s.opts.Hash.SCRAMIterations
	if iters == 0 {
		iters = DefaultSCRAMIterations
	}
	var user store.User
	var known bool
	sc := &scramServer{
		hashName:   hashName,
		plus:       strings.HasSuffix(mech, "-PLUS"),
		advertised: slices.Contains(s.MechanismsFor(r.TLS), MechSCRAMSHA256Plus),
		bind:       b,
	}
	sc.lookup = func(username string) (scram.StoredCredentials, error) {
		prepped, err := SASLprep(username) // RFC 5802 5.1: the server prepares the name with SASLprep
		if err != nil {
			return fakeSCRAM(s.secret, hashName, username, iters), nil
		}
		u, ok, err := s.lookup(ctx, prepped)
		if err != nil {
			return scram.StoredCredentials{}, storeError{err}
		}
		var cred *scramCred
		if ok {
			if c, err := parseCredentials(u.PasswordHash); err == nil {
				cred = map[string]*scramCred{"sha-1": c.scram1, "sha-256": c.scram2}[hashName]
			}
		}
		if cred == nil {
			return fakeSCRAM(s.secret, hashName, prepped, iters), nil
		}
		user, known = u, true
		return storedSCRAM(cred), nil
	}
	sc.finish = func(username string, valid bool, why error) error {
		u, err := s.attempt(ctx, r.IP, mech, username, func() (store.User, error) {
			switch {
			case why != nil:
				return store.User{}, why
			case !valid || !known:
				return store.User{}, ErrInvalidCredentials
			}
			return user, nil
		})
		if err == nil {
			done(u)
		}
		return err
	}
	return sc
}
