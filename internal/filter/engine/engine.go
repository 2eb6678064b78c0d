// Package engine holds what the checks that call an external engine (clamd, spamd, rspamd, milters) share: the
// "tcp:host:port" / "unix:/path" address syntax of the config, dialing with the context's deadline, and the
// on_error policy that decides what an unreachable or confused engine means for the message.
package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/postern/postern/internal/filter"
)

// Addr is a parsed engine address.
type Addr struct {
	Network string // "tcp" or "unix"
	Address string // "host:port" or a socket path
}

func (a Addr) String() string { return a.Network + ":" + a.Address }

// ParseAddr parses "tcp:host:port", "unix:/path", "inet:port@host" (the milter convention), a bare "host:port"
// (tcp) or a bare absolute path (unix).
func ParseAddr(s string) (Addr, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Addr{}, fmt.Errorf("empty engine address")
	case strings.HasPrefix(s, "unix:"), strings.HasPrefix(s, "local:"):
		p := s[strings.IndexByte(s, ':')+1:]
		if p == "" {
			return Addr{}, fmt.Errorf("engine address %q: empty socket path", s)
		}
		return Addr{"unix", p}, nil
	case strings.HasPrefix(s, "/"):
		return Addr{"unix", s}, nil
	case strings.HasPrefix(s, "inet:"), strings.HasPrefix(s, "inet6:"):
		// Sendmail/Postfix milter syntax: inet:port@host.
		rest := s[strings.IndexByte(s, ':')+1:]
		port, host, ok := strings.Cut(rest, "@")
		if !ok {
			host = "localhost"
		}
		return checkHostPort(s, net.JoinHostPort(host, port))
	case strings.HasPrefix(s, "tcp:"):
		return checkHostPort(s, s[len("tcp:"):])
	}
	return checkHostPort(s, s)
}

func checkHostPort(orig, hp string) (Addr, error) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return Addr{}, fmt.Errorf("engine address %q: %w", orig, err)
	}
	if host == "" || port == "" {
		return Addr{}, fmt.Errorf("engine address %q: host and port needed", orig)
	}
	return Addr{"tcp", hp}, nil
}

// Dial connects to a; the connection's deadline is ctx's, so a hung engine cannot hold a message past the
// check's timeout.
func Dial(ctx context.Context, a Addr) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, a.Network, a.Address)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	// Closing the connection when ctx ends also unblocks reads and writes of a ctx cancelled without deadline.
	stop := context.AfterFunc(ctx, func() {
		_ = c.SetDeadline(time.Unix(1, 0)) // a deadline in the past: blocked I/O returns at once
	})
	return &conn{Conn: c, stop: stop}, nil
}

type conn struct {
	net.Conn
	stop func() bool
}

func (c *conn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// OnError is the policy for an engine that cannot give an answer (down, timed out, protocol error).
type OnError int

const (
	// FailTempfail answers 451 4.7.1: the sender retries later (the default: no unchecked mail gets through).
	FailTempfail OnError = iota
	// FailAccept lets the message through unchecked (fail open).
	FailAccept
)

// ParseOnError parses the config's on_error value: "tempfail" (or "") and "accept".
func ParseOnError(s string) (OnError, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "tempfail":
		return FailTempfail, nil
	case "accept":
		return FailAccept, nil
	}
	return 0, fmt.Errorf("on_error %q: want \"tempfail\" or \"accept\"", s)
}

// Failure is the verdict for an engine failure under policy p; the error goes to the log, never to the client.
func Failure(p OnError, log *slog.Logger, check string, err error) filter.Verdict {
	reason := fmt.Sprintf("%s unavailable: %v", check, err)
	if p == FailAccept {
		log.Warn("filter engine failed; message accepted unchecked (on_error=accept)", "check", check, "err", err)
		return filter.Verdict{Action: filter.Accept, Reason: reason + " (accepted unchecked)"}
	}
	log.Warn("filter engine failed; message tempfailed (on_error=tempfail)", "check", check, "err", err)
	return filter.Verdict{Action: filter.Tempfail, Code: 451, Enhanced: "4.7.1",
		Message: "Message could not be checked, try again later", Reason: reason}
}

// Logger returns l, or a logger that discards when l is nil.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
