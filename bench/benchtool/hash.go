package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// cmdHash prints an argon2id hash of the password with the parameters Postern uses (internal/auth: 19 MiB, 2
// passes, 1 lane), so a Dovecot login ({ARGON2ID} in its passwd-file, verified by libsodium) costs the same CPU
// and memory as a Postern login.
func cmdHash(_ context.Context, args []string) error {
	if len(args) != 1 || args[0] == "" {
		return errors.New("usage: benchtool hash PASSWORD")
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	const mem, passes, lanes = 19 * 1024, 2, 1
	key := argon2.IDKey([]byte(args[0]), salt, passes, mem, lanes, 32)
	b64 := base64.RawStdEncoding
	fmt.Printf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s\n", argon2.Version, mem, passes, lanes,
		b64.EncodeToString(salt), b64.EncodeToString(key))
	return nil
}
