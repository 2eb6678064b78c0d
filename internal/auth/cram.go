package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// cramServer implements CRAM-MD5 (RFC 2195): the server sends a unique challenge in msg-id form, the client
// answers "username SP hex(HMAC-MD5(password, challenge))". go-sasl has no CRAM-MD5 server.
type cramServer struct {
	challenge []byte
	// verify checks digest (16 raw octets) for username against the challenge.
	verify func(username string, digest []byte) error
	step   int // 0: challenge not sent, 1: waiting for the answer, 2: done
}

// newCRAMChallenge returns "<random.unixnano@hostname>" (RFC 2195 2: "presumptively arbitrary string of random
// digits, a timestamp, and the fully-qualified primary host name of the server"; RFC 5322 msg-id syntax).
func newCRAMChallenge(hostname string) []byte {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return fmt.Appendf(nil, "<%d.%d@%s>", binary.BigEndian.Uint64(r[:]), time.Now().UnixNano(), hostname)
}

// Next runs one step. CRAM-MD5 has no initial response: the server speaks first (RFC 2195 2), so a client that
// sends one breaks the mechanism (an empty one, "=", counts as none).
func (c *cramServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch c.step {
	case 0:
		if len(response) != 0 {
			c.step = 2
			return nil, true, fmt.Errorf("%w: CRAM-MD5 takes no initial response", errMalformed)
		}
		c.step = 1
		return bytes.Clone(c.challenge), false, nil
	case 1:
		c.step = 2
		username, digest, err := parseCRAMResponse(response)
		if err != nil {
			return nil, true, err
		}
		return nil, true, c.verify(username, digest)
	}
	return nil, true, fmt.Errorf("%w: CRAM-MD5 exchange already finished", errMalformed)
}

// parseCRAMResponse splits "username SP digest" at the last space (a username may hold spaces); the digest is
// 32 lower-case hex digits (RFC 2195 2; upper case is accepted, as other servers do).
func parseCRAMResponse(r []byte) (string, []byte, error) {
	i := bytes.LastIndexByte(r, ' ')
	if i < 0 {
		return "", nil, fmt.Errorf("%w: CRAM-MD5 response without a space", errMalformed)
	}
	username, hexDigest := string(r[:i]), r[i+1:]
	if err := checkCredential("username", username); err != nil {
		return "", nil, err
	}
	digest := make([]byte, 16)
	if len(hexDigest) != 32 {
		return "", nil, fmt.Errorf("%w: CRAM-MD5 digest of %d characters, want 32", errMalformed, len(hexDigest))
	}
	if _, err := hex.Decode(digest, hexDigest); err != nil {
		return "", nil, fmt.Errorf("%w: CRAM-MD5 digest is not hex", errMalformed)
	}
	return username, digest, nil
}

// cramVerify compares digest with the one cred gives for challenge in constant time. A nil cred (unknown user,
// or no secret stored) compares against a fixed secret, so the work does not depend on who exists.
func cramVerify(cred *cramCred, challenge, digest []byte) (bool, error) {
	known := cred != nil
	if !known {
		fake, err := newCRAMCred("no CRAM-MD5 secret stored for this user")
		if err != nil {
			return false, err
		}
		cred = fake
	}
	want, err := cred.digest(challenge)
	if err != nil {
		return false, err
	}
	return hmac.Equal(want, digest) && known, nil
}
