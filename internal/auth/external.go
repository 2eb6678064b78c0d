package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/store"
)

// externalServer implements EXTERNAL (RFC 4422 appendix A): the client is authenticated by its TLS client
// certificate; its only message is the authorization identity it wants, possibly empty.
type externalServer struct {
	verify func(authzid string) error
	step   int // 0: nothing received, 1: waiting after an empty challenge, 2: done
}

// Next runs one step. Without an initial response the server sends an empty challenge (RFC 4422 5); an empty
// initial response ("=") is the empty authzid.
func (e *externalServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch e.step {
	case 0, 1:
		if response == nil && e.step == 0 {
			e.step = 1
			return []byte{}, false, nil
		}
		e.step = 2
		authzid := string(response)
		if len(authzid) > maxCredential || !utf8.ValidString(authzid) {
			return nil, true, fmt.Errorf("%w: EXTERNAL authorization identity is not a bounded UTF-8 string", errMalformed)
		}
		return nil, true, e.verify(authzid)
	}
	return nil, true, fmt.Errorf("%w: EXTERNAL exchange already finished", errMalformed)
}

// certIdentities returns the addresses a verified client certificate names: its rfc822Name SANs, then its subject
// CN when that is an address (what `openssl req -subj /CN=user@example.org` makes).
func certIdentities(c *x509.Certificate) []string {
	ids := append([]string(nil), c.EmailAddresses...)
	if _, err := mail.ParseAddress(c.Subject.CommonName); err == nil {
		ids = append(ids, c.Subject.CommonName)
	}
	return ids
}

// verifyClientCert checks the client's chain against roots for client authentication, now.
func verifyClientCert(cs *tls.ConnectionState, roots *x509.CertPool) (*x509.Certificate, error) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return nil, fmt.Errorf("%w: EXTERNAL without a client certificate", ErrInvalidCredentials)
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: time.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("%w: client certificate: %v", ErrInvalidCredentials, err)
	}
	return leaf, nil
}

func (s *Service) newExternal(ctx context.Context, r SASLRequest, done func(store.User)) *externalServer {
	return &externalServer{verify: func(authzid string) error {
		name := authzid
		if name == "" && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			if ids := certIdentities(r.TLS.PeerCertificates[0]); len(ids) > 0 {
				name = ids[0]
			}
		}
		u, err := s.attempt(ctx, r.IP, MechExternal, name, func() (store.User, error) {
			return s.checkExternal(ctx, r.TLS, authzid)
		})
		if err == nil {
			done(u)
		}
		return err
	}}
}

// checkExternal maps a verified client certificate to a user: the identity the client asked for when it is one
// the certificate names, else the first named identity that is a user.
func (s *Service) checkExternal(ctx context.Context, cs *tls.ConnectionState, authzid string) (store.User, error) {
	leaf, err := verifyClientCert(cs, s.opts.ClientCAs)
	if err != nil {
		return store.User{}, err
	}
	for _, id := range certIdentities(leaf) {
		if authzid != "" && !sameIdentity(authzid, id) {
			continue
		}
		u, ok, err := s.lookup(ctx, id)
		if err != nil {
			return store.User{}, err
		}
		if ok {
			return u, nil
		}
	}
	if authzid != "" {
		return store.User{}, fmt.Errorf("%w: the client certificate does not name the requested identity", ErrInvalidCredentials)
	}
	return store.User{}, fmt.Errorf("%w: the client certificate names no user", ErrInvalidCredentials)
}
