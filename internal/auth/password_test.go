package auth

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestHashPasswordFormat(t *testing.T) {
	t.Parallel()
	h1, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword("s3cret")
	set := strings.Fields(h1)
	if len(set) != 3 || !strings.HasPrefix(set[1], "$scram-sha-256$i=10000$") || !strings.HasPrefix(set[2], "$scram-sha-1$i=10000$") {
		t.Errorf("credential set %q: want argon2id, SCRAM-SHA-256 and SCRAM-SHA-1", h1)
	}
	h1 = set[0]
	// PHC string format with OWASP's argon2id parameters.
	if !strings.HasPrefix(h1, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Count(h1, "$") != 5 {
		t.Errorf("hash %q is not argon2id PHC with m=19456,t=2,p=1", h1)
	}
	parts := strings.Split(h1, "$")
	if salt, err := b64.DecodeString(parts[4]); err != nil || len(salt) != 16 {
		t.Errorf("salt %q: %d bytes, %v", parts[4], len(salt), err)
	}
	if h1 == h2 {
		t.Error("two hashes of one password are equal: salt is not random")
	}
	if strings.Contains(h1, "s3cret") {
		t.Error("hash contains the password")
	}
	if _, err := HashPassword(""); err == nil {
		t.Error("empty password hashed")
	}
}

func TestVerifyPassword(t *testing.T) {
	t.Parallel()
	argon, _ := HashPassword("s3cret")
	bc, _ := bcrypt.GenerateFromPassword([]byte("old"), bcrypt.MinCost)
	for _, tt := range []struct {
		name, hash, pw string
		want           bool
	}{
		{"argon2id", argon, "s3cret", true},
		{"argon2id wrong", argon, "s3creT", false},
		{"argon2id empty", argon, "", false},
		{"bcrypt 2a", string(bc), "old", true},
		{"bcrypt wrong", string(bc), "Old", false},
		{"bcrypt too long", string(bc), strings.Repeat("o", 100), false},
		{"bcrypt 2b", "$2b$" + string(bc)[4:], "old", true},
		{"bcrypt 2y", "$2y$" + string(bc)[4:], "old", true},
		// php.net password_verify example (PHP writes $2y$).
		{"bcrypt php", "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a", "rasmuslerdorf", true},
		{"bcrypt php wrong", "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a", "rasmuslerdorF", false},
	} {
		if ok, err := VerifyPassword(tt.hash, tt.pw); ok != tt.want || err != nil {
			t.Errorf("%s: VerifyPassword = %v, %v; want %v", tt.name, ok, err, tt.want)
		}
	}
	for _, bad := range []string{
		"", "plain", "s3cret", "{MD5}abc", "$1$salt$md5crypt", "5ebe2294ecd0e0f08eab7690d2a6ee69",
		"$argon2id$v=19$m=0,t=0,p=0$$", "$argon2id$x", "$argon2id$v=18$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$a2V5", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5", "$2a$",
		"$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$a2V5", "$argon2id$v=19$m=19456,t=100000,p=1$c2FsdHNhbHQ$a2V5",
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$a2V5", // 4-byte salt
	} {
		if ok, err := VerifyPassword(bad, "s3cret"); ok || err == nil {
			t.Errorf("hash %q: ok=%v err=%v; want an error", bad, ok, err)
		}
	}
}
