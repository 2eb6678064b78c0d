package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// argon2id parameters: OWASP's recommendation (19 MiB, 2 passes, 1 lane).
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
)

var b64 = base64.RawStdEncoding

// HashPassword returns the credential set of password with DefaultHashOptions: its argon2id hash in PHC string
// format followed by its SCRAM secrets (see credentials.go).
func HashPassword(password string) (string, error) {
	return HashPasswordOptions(password, DefaultHashOptions)
}

// hashArgon2id returns an argon2id hash in PHC string format.
func hashArgon2id(password string) (string, error) {
	if password == "" {
		return "", errors.New("empty password")
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword checks password against an argon2id (PHC) or bcrypt hash, or the primary hash of a credential
// set, in constant time.
func VerifyPassword(hash, password string) (bool, error) {
	hash, _, _ = strings.Cut(hash, " ") // the primary hash of a credential set
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		return verifyArgon2id(hash, password)
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		// bcrypt only reads 72 bytes; a longer password cannot be the one that was hashed.
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) || errors.Is(err, bcrypt.ErrPasswordTooLong) {
			return false, nil
		}
		return err == nil, err
	}
	return false, errors.New("unknown password hash format")
}

// verifyArgon2id checks a PHC string "$argon2id$v=19$m=KiB,t=passes,p=lanes$salt$key" (RFC 9106).
func verifyArgon2id(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$") // "", argon2id, v=19, m=..,t=..,p=.., salt, key
	if len(parts) != 6 {
		return false, errors.New("malformed argon2id hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errors.New("unsupported argon2id version")
	}
	var m, t uint32
	var p uint8
	// Bounds keep a corrupt or hostile stored hash from costing gigabytes or minutes per login.
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil ||
		m < 8*uint32(p) || m > 1<<20 || t == 0 || t > 100 || p == 0 || p > 16 {
		return false, errors.New("malformed argon2id parameters")
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 { // RFC 9106 3.1: salt of at least 8 bytes (16 recommended)

		return false, errors.New("malformed argon2id salt")
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 128 {
		return false, errors.New("malformed argon2id key")
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
