package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"strings"

	"github.com/xdg-go/scram"
)

// Channel binding types SCRAM-*-PLUS accepts (RFC 5056; RFC 5929 4; RFC 9266). tls-unique is not offered: Go
// does not expose the Finished message, and RFC 9266 retires it for TLS 1.3.
const (
	cbExporter       = "tls-exporter"
	cbServerEndPoint = "tls-server-end-point"
)

// bindings computes channel binding data for one TLS connection.
type bindings struct {
	cs         *tls.ConnectionState
	serverCert func(*tls.ConnectionState) *x509.Certificate // nil: no tls-server-end-point
}

// get returns the data of binding type typ, or ok=false when this connection cannot provide it.
func (b bindings) get(typ string) (data []byte, ok bool) {
	if b.cs == nil {
		return nil, false
	}
	switch typ {
	case cbExporter:
		// RFC 9266 2: label "EXPORTER-Channel-Binding", zero-length context, 32 octets. Only on TLS 1.3: RFC 9266 3
		// allows TLS 1.2 only with extended master secret, and clients disagree on how an empty context is encoded
		// there (RFC 5705 4 tells "no context" and "empty context" apart); tls-server-end-point covers TLS 1.2.
		if b.cs.Version < tls.VersionTLS13 {
			return nil, false
		}
		d, err := b.cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", []byte{}, 32)
		return d, err == nil
	case cbServerEndPoint:
		if b.serverCert == nil {
			return nil, false
		}
		c := b.serverCert(b.cs)
		if c == nil {
			return nil, false
		}
		return serverEndPoint(c)
	}
	return nil, false
}

// available reports whether any binding type works on this connection (so -PLUS may be offered).
func (b bindings) available() bool {
	_, e := b.get(cbExporter)
	_, s := b.get(cbServerEndPoint)
	return e || s
}

// serverEndPoint hashes the server certificate as RFC 5929 4.1 says: with the hash of its signature algorithm,
// SHA-256 instead of MD5 or SHA-1. For algorithms without a single hash (Ed25519) the binding is undefined.
func serverEndPoint(c *x509.Certificate) ([]byte, bool) {
	var h hash.Hash
	switch c.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.ECDSAWithSHA256:
		h = sha256.New()
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = sha512.New384()
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		h = sha512.New()
	default:
		return nil, false
	}
	h.Write(c.Raw)
	return h.Sum(nil), true
}

// scramServer runs one SCRAM exchange (RFC 5802 5) with xdg-go/scram's conversation, adding what it leaves to
// the application: choosing the channel binding the client asked for, refusing "p" under a name without -PLUS,
// fake credentials for unknown users, the lockout and failure bookkeeping, and the final empty response.
type scramServer struct {
	hashName   string // "sha-1" or "sha-256"
	plus       bool   // the client chose the -PLUS name
	advertised bool   // -PLUS was offered on this connection (a "y" client is then being downgraded, RFC 5802 6)
	bind       bindings
	lookup     func(username string) (scram.StoredCredentials, error)
	// finish checks the outcome of the proof for username (valid only if the proof matched a known user's
	// secret) and does the bookkeeping; a nil error means success.
	finish func(username string, valid bool, why error) error
	nonce  func() string // nil: xdg-go's default, 24 random bytes

	conv     *scram.ServerConversation
	username string
	step     int // 0: waiting for client-first, 1: waiting for client-final, 2: waiting for the empty ack, 3: done
}

// Next runs one step. The client-first message may come as initial response or after an empty challenge (RFC
// 4422 5). After a valid proof the server-final message ("v=...") goes out as a challenge and the client answers
// with an empty response, the usual way to carry it in SMTP, IMAP and POP3 (RFC 4954 4, RFC 9051 6.2.2, RFC 5034 4).
func (s *scramServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.step {
	case 0:
		if response == nil {
			return []byte{}, false, nil
		}
		s.step = 1
		out, err := s.first(string(response))
		if err != nil {
			s.step = 3
			return nil, true, err
		}
		return []byte(out), false, nil
	case 1:
		s.step = 2
		out, err := s.conv.Step(string(response))
		var why error
		switch {
		case err != nil:
			why = fmt.Errorf("%w: SCRAM: %s", ErrInvalidCredentials, scramReason(out, err))
		case !s.conv.Valid():
			why = fmt.Errorf("%w: SCRAM proof not accepted", ErrInvalidCredentials)
		}
		if err := s.finish(s.username, why == nil, why); err != nil {
			s.step = 3
			return nil, true, err
		}
		return []byte(out), false, nil
	case 2:
		s.step = 3
		if len(response) != 0 {
			return nil, true, fmt.Errorf("%w: SCRAM: data after the server-final message", errMalformed)
		}
		return nil, true, nil
	}
	return nil, true, fmt.Errorf("%w: SCRAM exchange already finished", errMalformed)
}

// scramReason names a failure without repeating client data.
func scramReason(serverErr string, err error) string {
	if strings.HasPrefix(serverErr, "e=") {
		return serverErr[2:]
	}
	if strings.Contains(err.Error(), "nonce") {
		return "nonce mismatch"
	}
	return "malformed client-final message"
}

// first checks the GS2 header of client-first (RFC 5802 7: gs2-cbind-flag "n", "y" or "p=" cb-name), picks the
// channel binding, and starts the conversation.
func (s *scramServer) first(msg string) (string, error) {
	flag, _, ok := strings.Cut(msg, ",")
	if !ok {
		return "", fmt.Errorf("%w: SCRAM client-first without a GS2 header", errMalformed)
	}
	var cb scram.ChannelBinding
	switch {
	case strings.HasPrefix(flag, "p="):
		typ := flag[2:]
		if !s.plus {
			// RFC 5802 6: "p" means the client wants channel binding, which only the -PLUS names carry.
			return "", fmt.Errorf("%w: SCRAM channel binding requested without the -PLUS mechanism", ErrInvalidCredentials)
		}
		data, ok := s.bind.get(typ)
		if !ok {
			return "", fmt.Errorf("%w: SCRAM channel binding type %.32q is not supported here", ErrInvalidCredentials, typ)
		}
		cb = scram.ChannelBinding{Type: scram.ChannelBindingType(typ), Data: data}
	case flag == "n" || flag == "y":
		if s.plus {
			return "", fmt.Errorf("%w: SCRAM -PLUS mechanism without channel binding", ErrInvalidCredentials)
		}
		if s.advertised && flag == "y" {
			// The client supports binding but believes we do not: someone removed -PLUS from our list.
			return "", fmt.Errorf("%w: SCRAM downgrade detected (client sent y, -PLUS was offered)", ErrInvalidCredentials)
		}
	default:
		return "", fmt.Errorf("%w: SCRAM GS2 flag is not n, y or p=", errMalformed)
	}
	srv, err := scram.HashGeneratorFcn(scramHash(s.hashName)).NewServer(s.lookup)
	if err != nil {
		return "", fmt.Errorf("SCRAM server: %w", err)
	}
	if s.nonce != nil {
		srv = srv.WithNonceGenerator(s.nonce)
	}
	if cb.IsSupported() {
		s.conv = srv.NewConversationWithChannelBindingRequired(cb)
	} else {
		s.conv = srv.NewConversation()
	}
	out, err := s.conv.Step(msg)
	if err != nil {
		var se storeError
		if errors.As(err, &se) {
			return "", se.err
		}
		return "", fmt.Errorf("%w: SCRAM: %s", errMalformed, scramReason(out, err))
	}
	s.username = s.conv.Username()
	if z := s.conv.AuthzID(); z != "" && !sameIdentity(z, s.username) {
		return "", fmt.Errorf("%w: authorization identity differs from the authentication identity", ErrInvalidCredentials)
	}
	return out, nil
}

// storeError carries a store failure out of xdg-go's lookup callback, which can only report "unknown user".
type storeError struct{ err error }

func (e storeError) Error() string { return e.err.Error() }

// fakeSCRAM returns credentials for a user that has none (unknown, or never logged in since SCRAM was enabled):
// the salt is derived from username with the service secret, so it is the same at every attempt and looks like a
// real one, and the StoredKey is random, so no proof matches (RFC 5802 9: do not reveal whether a user exists).
func fakeSCRAM(secret []byte, hashName, username string, iters int) scram.StoredCredentials {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("scram salt\x00" + hashName + "\x00" + username))
	salt := m.Sum(nil)[:16]
	size := scramHash(hashName)().Size()
	key := make([]byte, size)
	_, _ = rand.Read(key)
	return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(salt), Iters: iters}, StoredKey: key, ServerKey: key}
}

// storedSCRAM converts a stored secret to xdg-go's form.
func storedSCRAM(c *scramCred) scram.StoredCredentials {
	return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(c.salt), Iters: c.iters},
		StoredKey: c.stored, ServerKey: c.server}
}
