// Package engine holds what the checks that call an external engine (clamd, spamd, rspamd, milters) share: the
// "tcp:host:port" / "unix:/path" address syntax of the config, dialing with the context's deadline, the on_error
// policy that decides what an unreachable or confused engine means for the message, and a Client that holds the
// policy, the request timeout and the size limit above which a message is not sent. Package enginetest has the
// test helpers they share.
package engine

import (
	"context"
	"fmt"
	"io"
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

// DefaultTimeout bounds one request to an engine when the config gives no timeout.
const DefaultTimeout = 60 * time.Second

// Config is what every engine check's Options has besides the address: the on_error policy, the time one
// request may take (default DefaultTimeout), the size above which a message is not sent (0: the check's
// default; negative: no limit) and the logger.
type Config struct {
	OnError string
	Timeout time.Duration
	MaxSize int64
	Logger  *slog.Logger
}

// Client is the part every engine check shares: how a failure is answered, how long a request may take and
// which messages are too large to send. Each check keeps one and calls its methods from Data.
type Client struct {
	Check   string // the check's name, for reasons and the log
	OnError OnError
	Timeout time.Duration
	MaxSize int64 // 0: no limit
	Log     *slog.Logger
}

// NewClient checks c for the check named check; defaultMax is the check's size limit when c gives none (0: no
// limit).
func NewClient(check string, c Config, defaultMax int64) (Client, error) {
	p, err := ParseOnError(c.OnError)
	if err != nil {
		return Client{}, fmt.Errorf("%s: %w", check, err)
	}
	cl := Client{Check: check, OnError: p, Timeout: c.Timeout, MaxSize: c.MaxSize, Log: Logger(c.Logger)}
	if cl.Timeout <= 0 {
		cl.Timeout = DefaultTimeout
	}
	switch {
	case cl.MaxSize == 0:
		cl.MaxSize = defaultMax
	case cl.MaxSize < 0:
		cl.MaxSize = 0
	}
	return cl, nil
}

// NewDialer is NewClient for a check that dials its engine at address ("tcp:host:port", "unix:/path", ...):
// clamav, spamd and each milter.
func NewDialer(check, address string, c Config, defaultMax int64) (Addr, Client, error) {
	a, err := ParseAddr(address)
	if err != nil {
		return Addr{}, Client{}, fmt.Errorf("%s: %w", check, err)
	}
	cl, err := NewClient(check, c, defaultMax)
	return a, cl, err
}

// Fail is the verdict for an engine that gave no usable answer, under the on_error policy.
func (c *Client) Fail(err error) filter.Verdict { return Failure(c.OnError, c.Log, c.Check, err) }

// WithTimeout bounds one request.
func (c *Client) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.Timeout)
}

// TooLarge reports whether a message of size bytes is over MaxSize; v is then the verdict to return: the
// message passes unscanned (as spamc does), with the reason in the mail log.
func (c *Client) TooLarge(queueID string, size int64) (v filter.Verdict, over bool) {
	if c.MaxSize <= 0 || size <= c.MaxSize {
		return filter.Verdict{}, false
	}
	c.Log.Info("message not scanned, too large", "check", c.Check, "queue_id", queueID, "size", size, "max", c.MaxSize)
	return filter.Verdict{Reason: fmt.Sprintf("%s: not scanned, %d bytes > %d", c.Check, size, c.MaxSize)}, true
}

// ReadMessage reads m whole, for an engine that takes the message in one request. When it cannot, ok is false
// and v is the verdict to return: unscanned when m is over MaxSize, a failure under on_error when it cannot be
// read.
func (c *Client) ReadMessage(queueID string, m *filter.Message) (msg []byte, v filter.Verdict, ok bool) {
	if v, over := c.TooLarge(queueID, m.Size); over {
		return nil, v, false
	}
	r, err := m.Open()
	if err != nil {
		return nil, c.Fail(fmt.Errorf("open message: %w", err)), false
	}
	defer r.Close()
	lr := io.Reader(r)
	if c.MaxSize > 0 {
		lr = io.LimitReader(r, c.MaxSize+1) // m.Size may be wrong: never hold more than the limit
	}
	msg, err = io.ReadAll(lr)
	if err != nil {
		return nil, c.Fail(fmt.Errorf("read message: %w", err)), false
	}
	if v, over := c.TooLarge(queueID, int64(len(msg))); over {
		return nil, v, false
	}
	return msg, filter.Verdict{}, true
}

// Pinger is an engine check that can tell whether its engine answers (clamd's PING, spamd's PING, rspamd's
// /ping): serve asks at start and `postern check` on demand, so an engine that is down shows before mail waits
// on it.
type Pinger interface {
	filter.Check
	Ping(ctx context.Context) error
}

// HeaderSafe drops the characters that would break a protocol header line (controls, CR, LF, DEL).
func HeaderSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
