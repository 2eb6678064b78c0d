// Package pop2server is Postern's legacy POP2 server (RFC 937, port 109), off by default, for old clients that
// still fetch mail with it. It serves the user's INBOX with the same maildrop rules as POP3: a snapshot taken at
// login, one lock per maildrop shared with POP3 ([IN-USE] there, "-" here), deletions (ACKD) and \Seen marks
// (ACKS, ACKD) applied only at QUIT through one store call each, durable before the "+" reply, so a dropped
// connection changes nothing.
//
// The protocol, as RFC 937 and UW's ipop2d have it:
//
//	S: + POP2 mail.example.org Postern server ready
//	C: HELO user password      S: #2 messages in INBOX        (or "-" and the connection closes)
//	C: READ 1                  S: =1234 characters in message 1   (=0: no such message)
//	C: RETR                    S: exactly 1234 octets of the stored message, nothing added
//	C: ACKS | ACKD | NACK      S: =ccc for the next message (NACK: the same one again)
//	C: FOLD INBOX              S: #2 messages in INBOX
//	C: QUIT                    S: + Postern POP2 server signing off
//
// The count after "=" is the stored size and RETR sends the stored octets unchanged (no dot-stuffing: the count
// frames the message), so what the client receives is exactly what was delivered. Only INBOX can be selected.
//
// Security trade-off: POP2 has neither STARTTLS nor SASL, so HELO carries the password in the clear. When the
// connection is not TLS-protected (a listener wrapped by tls.NewListener is) and Options.AllowPlaintextAuth is
// false, the server refuses every session in its greeting, before the client can send a password. Postern's
// listen.pop2 listener is plain TCP, so in practice POP2 works only with auth.allow_plaintext = true, which
// also opens POP3, IMAP and SMTP AUTH to plaintext passwords: meant for closed networks, or behind a TLS
// tunnel (stunnel) that terminates on loopback. That is the price of supporting a 1985 protocol without
// weakening the default.
package pop2server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postern/postern/internal/connserver"
	"github.com/postern/postern/internal/store"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = connserver.ErrServerClosed

// Store is what the server needs of the mail store (implemented by store.Store).
type Store interface {
	GetMailbox(ctx context.Context, userID int64, name string) (store.Mailbox, error)
	Messages(ctx context.Context, q store.MessageQuery) ([]store.Message, error)
	StoreFlags(ctx context.Context, req store.StoreFlagsRequest) (store.StoreFlagsResult, error)
	Expunge(ctx context.Context, req store.ExpungeRequest) (store.ExpungeResult, error)
}

// Blobs opens message bodies (implemented by store.BlobStore).
type Blobs interface {
	Open(ctx context.Context, id string) (io.ReadCloser, error)
}

// Authenticator checks passwords (implemented by *auth.Service, with the lockout shared by every protocol).
type Authenticator interface {
	Authenticate(ctx context.Context, ip netip.Addr, username, password string) (store.User, error)
}

// Locker holds maildrop locks; share the POP3 server's so that the two exclude each other.
type Locker interface {
	TryLock(mailboxID int64) (unlock func(), ok bool)
}

// Options configure a Server. Zero limits take the defaults noted.
type Options struct {
	Hostname           string
	AllowPlaintextAuth bool // accept HELO on a connection that is not TLS-protected
	MaxConnections     int  // default 1000
	MaxConnsPerIP      int  // default 20
	// MaxCommands bounds the commands of a session; default 1000, plus three per message (READ, RETR, ACK).
	MaxCommands int
	MaxErrors   int           // bad commands per session before the connection is closed; default 10
	Timeout     time.Duration // inactivity autologout; default 10m
	Store       Store
	Blobs       Blobs
	Auth        Authenticator
	Locks       Locker // nil: a lock table private to this server
	Logger      *slog.Logger
}

// Server serves POP2 sessions.
type Server struct {
	opts   Options
	log    *slog.Logger
	nextID atomic.Uint64
	ctx    context.Context // parent of every session context; cancelled when Shutdown gives up waiting
	cancel context.CancelFunc
	conns  *connserver.Server // accept loop, connection limits, sessions, shutdown (which also runs cancel)
}

// New returns a Server.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Blobs == nil || o.Auth == nil {
		return nil, errors.New("pop2server: Store, Blobs and Auth are required")
	}
	if o.Hostname == "" {
		return nil, errors.New("pop2server: no hostname")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxConnections, 1000)
	def(&o.MaxConnsPerIP, 20)
	def(&o.MaxCommands, 1000)
	def(&o.MaxErrors, 10)
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Locks == nil {
		o.Locks = &localLocks{held: map[int64]bool{}}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{opts: o, log: o.Logger, ctx: ctx, cancel: cancel}
	s.conns = connserver.New(connserver.Options{
		MaxConnections: o.MaxConnections, MaxConnsPerIP: o.MaxConnsPerIP, Refuse: refuse, Stop: cancel, Logger: o.Logger,
		NewSession: func(c net.Conn, ip netip.Addr) connserver.Session { return newSession(s, c, ip) },
	})
	return s, nil
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.conns.Serve(ln) }

// Shutdown stops accepting and interrupts idle sessions; a command in progress may finish until ctx is done, then
// every connection is closed (see connserver.Server.Shutdown). Nothing is acknowledged that was not committed.
func (s *Server) Shutdown(ctx context.Context) error { return s.conns.Shutdown(ctx) }

// refuse is what a client refused by the connection limits is told.
func refuse(c net.Conn, why connserver.Refusal) string {
	switch why {
	case connserver.TooMany:
		return "- Too many connections, try again later"
	case connserver.TooManyFromIP:
		return "- Too many connections from your address"
	}
	return "- Server shutting down"
}

// localLocks is the in-process default Locker (see pop3server.LocalLocks for what a multi-node store needs).
type localLocks struct {
	mu   sync.Mutex // guards held
	held map[int64]bool
}

func (l *localLocks) TryLock(mailboxID int64) (func(), bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[mailboxID] {
		return nil, false
	}
	l.held[mailboxID] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			delete(l.held, mailboxID)
			l.mu.Unlock()
		})
	}, true
}

// isTLS reports whether a connection is TLS-protected.
func isTLS(c net.Conn) bool {
	_, ok := c.(*tls.Conn)
	return ok
}
