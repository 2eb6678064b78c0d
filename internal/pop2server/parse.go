package pop2server

import (
	"errors"
	"strings"
)

// command is one parsed POP2 command line.
type command struct {
	verb     string // upper case
	arg      string // the argument of FOLD and READ; "" when none
	user     string // HELO
	password string // HELO: everything after the user name and one space, spaces included
}

// Parse errors.
var (
	errEmpty      = errors.New("empty command")
	errBadKeyword = errors.New("malformed command keyword")
	errBadChar    = errors.New("control character in command")
)

// parseCommand splits a command line (without CRLF): a four-letter keyword, case-insensitive as in ipop2d, and
// its arguments (RFC 937 "Command Summary"). HELO's password is the rest of the line as sent, so it may contain
// spaces (ipop2d's backslash quoting is not supported: a backslash is part of the password).
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
	if len(verb) != 4 {
		return command{}, errBadKeyword
	}
	for i := 0; i < len(verb); i++ {
		if c := verb[i] | 0x20; c < 'a' || c > 'z' {
			return command{}, errBadKeyword
		}
	}
	cmd := command{verb: strings.ToUpper(verb)}
	if cmd.verb == "HELO" {
		cmd.user, cmd.password, _ = strings.Cut(rest, " ")
		return cmd, nil
	}
	cmd.arg = strings.TrimSpace(rest)
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
