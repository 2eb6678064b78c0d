package auth

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/xdg-go/stringprep"
)

// A stored password is a *credential set*: the primary hash (argon2id or bcrypt, in PHC form) that checks a
// password, then, separated by single spaces, the secrets the challenge-response mechanisms need, because with
// those the server never sees the password:
//
//	$argon2id$v=19$m=19456,t=2,p=1$SALT$KEY $scram-sha-256$i=10000$SALT$STOREDKEY$SERVERKEY $scram-sha-1$... $cram-md5$INNER$OUTER
//
// All binary fields are unpadded standard base64, as in PHC strings. The set lives in store.User.PasswordHash, so
// no store schema changes; a value with only the primary hash (every hash written before) stays valid, and the
// missing secrets are added at the user's next password login (see Service.upgrade).
//
// SCRAM's StoredKey and ServerKey (RFC 5802 3) are a salted, iterated hash of the password: they let the server
// check a proof and prove itself, but logging in with them requires breaking PBKDF2 first. They are weaker against
// offline guessing than argon2id (PBKDF2 is not memory-hard), which is the price of a mechanism that never sends
// the password; HashOptions.SCRAMIterations sets the cost.
//
// CRAM-MD5 (RFC 2195) is different: the server must be able to compute HMAC-MD5(password, challenge), so what it
// stores is *plaintext-equivalent for CRAM-MD5* — whoever reads it can answer any CRAM-MD5 challenge. We store
// the two MD5 states after the HMAC key blocks (key XOR ipad, key XOR opad), as Dovecot does: they do not reveal
// the password itself (no reuse on other sites), but they are stored only when the admin turns CRAM-MD5 on.

// Mechanism names of the challenge-response mechanisms (RFC 2195, RFC 5802, RFC 7677, RFC 4422 appendix A).
const (
	MechCRAMMD5         = "CRAM-MD5"
	MechSCRAMSHA1       = "SCRAM-SHA-1"
	MechSCRAMSHA1Plus   = "SCRAM-SHA-1-PLUS"
	MechSCRAMSHA256     = "SCRAM-SHA-256"
	MechSCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
	MechExternal        = "EXTERNAL"
)

// DefaultSCRAMIterations is the PBKDF2 iteration count of new SCRAM secrets. RFC 7677 4 asks for at least 4096;
// more costs every client login a little and an attacker with a stolen database much more.
const DefaultSCRAMIterations = 10000

// maxSCRAMIterations bounds what a stored (possibly corrupt) credential may make a client compute.
const maxSCRAMIterations = 10_000_000

// HashOptions choose which secrets a credential set holds besides the primary argon2id hash.
type HashOptions struct {
	SCRAMIterations int  // 0: no SCRAM secrets; else at least 4096 (RFC 7677 4)
	CRAMMD5         bool // store the CRAM-MD5 secret (plaintext-equivalent for CRAM-MD5; see above)
}

// DefaultHashOptions are those of HashPassword: SCRAM secrets, no CRAM-MD5 secret.
var DefaultHashOptions = HashOptions{SCRAMIterations: DefaultSCRAMIterations}

// scramCred is one SCRAM secret (RFC 5802 3): salt, iteration count, StoredKey and ServerKey.
type scramCred struct {
	salt       []byte
	iters      int
	stored     []byte
	server     []byte
	hashName   string // "sha-1" or "sha-256"
	hashLength int
}

// credentials is a parsed credential set.
type credentials struct {
	primary string     // argon2id or bcrypt
	scram1  *scramCred // SCRAM-SHA-1
	scram2  *scramCred // SCRAM-SHA-256
	cram    *cramCred
}

// cramCred holds the MD5 states of HMAC-MD5 after the inner and the outer key block (RFC 2104 2).
type cramCred struct{ inner, outer []byte }

// HashPasswordOptions returns a credential set for password: its argon2id hash plus the secrets o asks for.
func HashPasswordOptions(password string, o HashOptions) (string, error) {
	primary, err := hashArgon2id(password)
	if err != nil {
		return "", err
	}
	c, err := deriveExtras(credentials{primary: primary}, password, o)
	if err != nil {
		return "", err
	}
	return c.String(), nil
}

// deriveExtras replaces the SCRAM and CRAM-MD5 secrets of c with those o asks for, computed from password.
func deriveExtras(c credentials, password string, o HashOptions) (credentials, error) {
	c.scram1, c.scram2, c.cram = nil, nil, nil
	if o.SCRAMIterations > 0 {
		if o.SCRAMIterations < 4096 || o.SCRAMIterations > maxSCRAMIterations {
			return c, fmt.Errorf("SCRAM iterations %d: must be between 4096 and %d", o.SCRAMIterations, maxSCRAMIterations)
		}
		// RFC 5802 2.2: Hi(Normalize(password), salt, i); Normalize is SASLprep (RFC 4013). A password SASLprep
		// refuses (e.g. with control characters) cannot be used with SCRAM by any client, so it gets no secret.
		if prepped, err := SASLprep(password); err == nil {
			for _, h := range []struct {
				dst  **scramCred
				name string
			}{{&c.scram1, "sha-1"}, {&c.scram2, "sha-256"}} {
				salt := make([]byte, 16)
				if _, err := rand.Read(salt); err != nil {
					return c, fmt.Errorf("salt: %w", err)
				}
				*h.dst = newSCRAMCred(h.name, prepped, salt, o.SCRAMIterations)
			}
		}
	}
	if o.CRAMMD5 {
		cc, err := newCRAMCred(password)
		if err != nil {
			return c, err
		}
		c.cram = cc
	}
	return c, nil
}

func scramHash(name string) func() hash.Hash {
	if name == "sha-1" {
		return sha1.New
	}
	return sha256.New
}

// newSCRAMCred computes StoredKey and ServerKey (RFC 5802 3) from an already SASLprepped password.
func newSCRAMCred(hashName, prepped string, salt []byte, iters int) *scramCred {
	h := scramHash(hashName)
	size := h().Size()
	salted, _ := pbkdf2.Key(h, prepped, salt, iters, size) // fails only for FIPS-forbidden inputs
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(h, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	stored := h()
	stored.Write(clientKey)
	return &scramCred{salt: salt, iters: iters, stored: stored.Sum(nil), server: mac(salted, "Server Key"),
		hashName: hashName, hashLength: size}
}

// newCRAMCred computes the HMAC-MD5 key states for password (RFC 2104 2; RFC 2195 2).
func newCRAMCred(password string) (*cramCred, error) {
	key := []byte(password)
	if len(key) > md5.BlockSize { // RFC 2104 2: keys longer than B bytes are first hashed
		sum := md5.Sum(key)
		key = sum[:]
	}
	state := func(pad byte) ([]byte, error) {
		block := make([]byte, md5.BlockSize)
		copy(block, key)
		for i := range block {
			block[i] ^= pad
		}
		h := md5.New()
		h.Write(block)
		return h.(encoding.BinaryMarshaler).MarshalBinary()
	}
	inner, err := state(0x36)
	if err != nil {
		return nil, fmt.Errorf("CRAM-MD5 secret: %w", err)
	}
	outer, err := state(0x5c)
	if err != nil {
		return nil, fmt.Errorf("CRAM-MD5 secret: %w", err)
	}
	return &cramCred{inner: inner, outer: outer}, nil
}

// digest returns HMAC-MD5(password, challenge) from the stored states.
func (c *cramCred) digest(challenge []byte) ([]byte, error) {
	inner, outer := md5.New(), md5.New()
	if err := inner.(encoding.BinaryUnmarshaler).UnmarshalBinary(c.inner); err != nil {
		return nil, fmt.Errorf("stored CRAM-MD5 secret: %w", err)
	}
	if err := outer.(encoding.BinaryUnmarshaler).UnmarshalBinary(c.outer); err != nil {
		return nil, fmt.Errorf("stored CRAM-MD5 secret: %w", err)
	}
	inner.Write(challenge)
	outer.Write(inner.Sum(nil))
	return outer.Sum(nil), nil
}

// String formats the set as stored.
func (c credentials) String() string {
	parts := []string{c.primary}
	for _, s := range []*scramCred{c.scram2, c.scram1} {
		if s != nil {
			parts = append(parts, fmt.Sprintf("$scram-%s$i=%d$%s$%s$%s", s.hashName, s.iters,
				b64.EncodeToString(s.salt), b64.EncodeToString(s.stored), b64.EncodeToString(s.server)))
		}
	}
	if c.cram != nil {
		parts = append(parts, "$cram-md5$"+b64.EncodeToString(c.cram.inner)+"$"+b64.EncodeToString(c.cram.outer))
	}
	return strings.Join(parts, " ")
}

// parseCredentials splits a stored value into its parts. The primary hash is not checked here (VerifyPassword
// does); an extra secret that does not parse is an error, so corruption is noticed rather than ignored.
func parseCredentials(stored string) (credentials, error) {
	fields := strings.Split(stored, " ")
	c := credentials{primary: fields[0]}
	for _, f := range fields[1:] {
		var err error
		switch {
		case strings.HasPrefix(f, "$scram-sha-256$"):
			c.scram2, err = parseSCRAM(f, "sha-256")
		case strings.HasPrefix(f, "$scram-sha-1$"):
			c.scram1, err = parseSCRAM(f, "sha-1")
		case strings.HasPrefix(f, "$cram-md5$"):
			c.cram, err = parseCRAM(f)
		default:
			err = errors.New("unknown secret")
		}
		if err != nil {
			return credentials{}, fmt.Errorf("stored credential %.16q: %w", f, err)
		}
	}
	return c, nil
}

func parseSCRAM(f, hashName string) (*scramCred, error) {
	p := strings.Split(f, "$") // "", scram-sha-256, i=N, salt, stored, server
	if len(p) != 6 || !strings.HasPrefix(p[2], "i=") {
		return nil, errors.New("malformed SCRAM secret")
	}
	iters, err := strconv.Atoi(p[2][2:])
	if err != nil || iters < 1 || iters > maxSCRAMIterations {
		return nil, errors.New("bad SCRAM iteration count")
	}
	size := scramHash(hashName)().Size()
	salt, err1 := b64.DecodeString(p[3])
	stored, err2 := b64.DecodeString(p[4])
	server, err3 := b64.DecodeString(p[5])
	if err := errors.Join(err1, err2, err3); err != nil || len(salt) == 0 || len(stored) != size || len(server) != size {
		return nil, errors.New("malformed SCRAM secret")
	}
	return &scramCred{salt: salt, iters: iters, stored: stored, server: server, hashName: hashName, hashLength: size}, nil
}

func parseCRAM(f string) (*cramCred, error) {
	p := strings.Split(f, "$") // "", cram-md5, inner, outer
	if len(p) != 4 {
		return nil, errors.New("malformed CRAM-MD5 secret")
	}
	inner, err1 := b64.DecodeString(p[2])
	outer, err2 := b64.DecodeString(p[3])
	if err := errors.Join(err1, err2); err != nil {
		return nil, errors.New("malformed CRAM-MD5 secret")
	}
	c := &cramCred{inner: inner, outer: outer}
	if _, err := c.digest(nil); err != nil {
		return nil, err
	}
	return c, nil
}

// satisfies reports whether c holds exactly the extra secrets o asks for (SCRAM with at least o's iterations).
func (c credentials) satisfies(o HashOptions) bool {
	if (c.cram != nil) != o.CRAMMD5 {
		return false
	}
	if o.SCRAMIterations == 0 {
		return c.scram1 == nil && c.scram2 == nil
	}
	return c.scram1 != nil && c.scram2 != nil && c.scram1.iters >= o.SCRAMIterations && c.scram2.iters >= o.SCRAMIterations
}

// SASLprep prepares a SCRAM username or password (RFC 4013, the stringprep profile RFC 5802 2.2 names).
func SASLprep(s string) (string, error) {
	out, err := stringprep.SASLprep.Prepare(s)
	if err != nil {
		return "", fmt.Errorf("SASLprep: %w", err)
	}
	return out, nil
}
