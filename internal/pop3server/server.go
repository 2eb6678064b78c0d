// Package pop3server is Postern's POP3 server: RFC 1939 with the extensions of RFC 2449 (CAPA, response codes),
// RFC 2595 (STLS), RFC 3206 (AUTH and SYS response codes) and RFC 5034 (AUTH with SASL), over the user's INBOX.
//
// The maildrop is a snapshot of INBOX taken at login: messages delivered during the session appear at the next
// one. DELE only marks; the marks take effect at QUIT (the UPDATE state, RFC 1939 6) through one store.Expunge,
// durable before +OK, so a dropped connection, a timeout or a shutdown deletes nothing. A second concurrent POP3
// (or POP2) session on the same maildrop gets -ERR [IN-USE]; IMAP sessions do not take the lock, as in Dovecot.
//
// Choices a reviewer should know:
//   - UIDL is Dovecot's default pop3_uidl_format "%08Xu%08Xv": the IMAP UID then the mailbox's UIDVALIDITY, each as
//     eight upper-case hex digits (UID 5, UIDVALIDITY 1700000000 -> "000000056553F100"). It is stable for as long
//     as IMAP's UID is, so both protocols name a message alike, and users moving from Dovecot keep their
//     "leave on server" state when the UIDs and UIDVALIDITY are migrated.
//   - RETR marks the message \Seen, TOP does not, like Dovecot's default (pop3_no_flag_updates = no): an IMAP
//     client on the same account then shows POP-downloaded mail as read. The flags change at QUIT together with
//     the deletions (RSET forgets both), so a dropped session changes nothing at all.
//   - Sizes in STAT, LIST and RETR are the stored octet counts. Stored messages use CRLF (Postern's SMTP refuses
//     bare LF), and RETR sends the stored bytes with only dot-stuffing added, so the client receives exactly the
//     announced size. A message stored with bare LF (imported by other means) is sent with CRLF line ends, as the
//     protocol requires, and is then longer than announced; RFC 1939 11 would count each LF as two octets, which
//     would mean reading every message at login.
//   - USER, PASS and AUTH are refused before TLS unless Options.AllowPlaintextAuth (loopback is not exempt). APOP
//     is not offered: it needs the plaintext password on the server.
package pop3server

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

	"github.com/emersion/go-sasl"

	"github.com/postern/postern/internal/auth"
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

// Authenticator checks passwords and offers SASL mechanisms per connection (implemented by *auth.Service, which
// applies the lockout shared with SMTP and IMAP): SCRAM-*-PLUS needs the TLS state for its channel binding and
// EXTERNAL the client certificate.
type Authenticator interface {
	Authenticate(ctx context.Context, ip netip.Addr, username, password string) (store.User, error)
	SASLConn(ctx context.Context, r auth.SASLRequest) (sasl.Server, error)
	MechanismsFor(tlsState *tls.ConnectionState) []string
}

// Locker holds maildrop locks (RFC 1939 8: the server must lock the maildrop for the session). POP3 and POP2
// must share one Locker so that they exclude each other.
type Locker interface {
	// TryLock takes the lock of the mailbox; ok is false when another session holds it. unlock releases it.
	TryLock(mailboxID int64) (unlock func(), ok bool)
}

// Options configure a Server. Zero limits take the defaults noted.
type Options struct {
	Hostname           string
	TLSConfig          *tls.Config // nil: no STLS. A listener wrapped by tls.NewListener serves implicit TLS (995).
	AllowPlaintextAuth bool        // accept USER/PASS and AUTH before TLS
	MaxConnections     int         // default 1000
	MaxConnsPerIP      int         // default 20
	// MaxCommands bounds the commands of a session; default 1000, plus three per message of the maildrop, so that
	// a client may LIST, RETR and DELE every message.
	MaxCommands     int
	MaxErrors       int           // bad commands per session before the connection is closed; default 10
	MaxAuthFailures int           // failed logins per connection before it is closed; default 3
	Timeout         time.Duration // inactivity autologout; default 10m (RFC 1939 3: at least 10 minutes)
	Store           Store
	Blobs           Blobs
	Auth            Authenticator
	Locks           Locker // nil: a lock table private to this server
	Logger          *slog.Logger
}

// Server serves POP3 sessions.
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
		return nil, errors.New("pop3server: Store, Blobs and Auth are required")
	}
	if o.Hostname == "" {
		return nil, errors.New("pop3server: no hostname")
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
	def(&o.MaxAuthFailures, 3)
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Locks == nil {
		o.Locks = NewLocalLocks()
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
		return "-ERR [SYS/TEMP] Too many connections, try again later"
	case connserver.TooManyFromIP:
		return "-ERR [SYS/TEMP] Too many connections from your address"
	}
	return "-ERR [SYS/TEMP] Server shutting down"
}

// LocalLocks is an in-process Locker, enough for the embedded store where one process serves every session.
// A multi-node store (PostgreSQL) needs the lock in the database instead: a lease row keyed by mailbox ID with an
// owner and an expiry that the session renews while it lives (or pg_try_advisory_lock held on the session's
// connection), so that a session on another node is refused and a crashed node's lock runs out.
type LocalLocks struct {
	mu   sync.Mutex // guards held
	held map[int64]bool
}

// NewLocalLocks returns an empty lock table.
func NewLocalLocks() *LocalLocks { return &LocalLocks{held: map[int64]bool{}} }

// TryLock implements Locker.
func (l *LocalLocks) TryLock(mailboxID int64) (func(), bool) {
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
