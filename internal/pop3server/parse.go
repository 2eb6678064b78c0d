package pop3server

import (
	"errors"
	"strings"
)

// maxCommandLine bounds a command line including CRLF (RFC 2449 4: 255 octets).
const maxCommandLine = 255

// maxSASLLine bounds one line of a SASL exchange. RFC 5034 4 lifts the command-line limit for it ("The BASE64
// string may in general be arbitrarily long"); 12288 is SMTP's minimum for the same purpose (RFC 4954 4).
const maxSASLLine = 12288

// maxKeyword is the longest keyword (RFC 2449 4: keywords up to 4 characters in the base protocol, 40 for
// extensions).
const maxKeyword = 40

// command is one parsed command line.
type command struct {
	verb string   // upper case
	args []string // separated by single spaces (RFC 1939 3)
	rest string   // everything after "VERB ", as sent: PASS takes it whole, spaces included (RFC 1939 7)
}

// Parse errors; the session answers them with -ERR and counts them against the error budget.
var (
	errEmpty      = errors.New("empty command")
	errBadKeyword = errors.New("malformed command keyword")
	errBadChar    = errors.New("control character in command")
)

// parseCommand splits a command line (without CRLF). RFC 1939 3: a case-insensitive keyword, then arguments
// separated by a single space. Keywords are printable ASCII letters; arguments may not contain control
// characters (a NUL in a password would otherwise reach the credential check).
func parseCommand(line string) (command, error) {
	if line == "" {
		return command{}, errEmpty
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 || c == 0x7f {
			return command{}, errBadChar
		}
	}
	verb, rest, _ := strings.Cut(line, " ")
	if verb == "" || len(verb) > maxKeyword {
		return command{}, errBadKeyword
	}
	for i := 0; i < len(verb); i++ {
		c := verb[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return command{}, errBadKeyword
		}
	}
	cmd := command{verb: strings.ToUpper(verb), rest: rest}
	// Lenient on the separators of ordinary arguments: several spaces count as one, a trailing space is dropped
	// (clients such as Outlook have sent "LIST " and "TOP 1  0").
	cmd.args = strings.Fields(rest)
	return cmd, nil
}

// parseNumber parses a message number or a line count: decimal digits only (no sign), at most 18 of them.
// Values above 2^31-1 are clamped to it, so "TOP 1 4294967295" (as some clients send to mean "everything")
// works and the value fits an int everywhere.
func parseNumber(s string) (int, bool) {
	const maxValue = 1<<31 - 1
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return int(min(n, maxValue)), true
}
