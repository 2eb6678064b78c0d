// Package auth checks users' passwords: argon2id (or bcrypt) hashes, a lockout of IPs that keep failing,
// failures that take the same time whatever went wrong, and the SASL server mechanisms (PLAIN, LOGIN) the
// protocol servers offer.
package auth
