// Package auth authenticates users for every protocol server: argon2id (or bcrypt) password hashes plus the SCRAM
// and CRAM-MD5 secrets of a stored credential set (credentials.go), the SASL server mechanisms (PLAIN, LOGIN,
// CRAM-MD5, SCRAM-SHA-1/256 and their -PLUS variants with channel binding, EXTERNAL with TLS client certificates),
// a lockout of clients and accounts that keep failing, failures that take the same time whatever went wrong, and
// one log line per failure that contrib/fail2ban matches.
package auth
