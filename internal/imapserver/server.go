// Package imapserver is Postern's IMAP server: IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501), chosen per session
// with ENABLE IMAP4rev2, on 143 (STARTTLS) and 993 (implicit TLS).
//
// The protocol layer is our own rather than go-imap v2's server, which lacks CONDSTORE, QRESYNC, QUOTA, context
// and pipelining. It owns syntax (a streaming parser with synchronizing and non-synchronizing literals), the state
// machine and capabilities, and talks to the store through the small interfaces below. Each session's selected
// mailbox is a view (the MSN <-> UID list it has announced), kept current from store.Notifier wake-ups and
// Store.Changes, and untagged EXISTS / EXPUNGE / FETCH are sent only where RFC 9051 7.5.1 allows them.
package imapserver

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/postern/postern/internal/auth"
	"github.com/postern/postern/internal/connserver"
	"github.com/postern/postern/internal/store"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = connserver.ErrServerClosed

// Store is what the server needs of the store: the mailbox operations of store.MailboxStore, a few of
// store.Mailstore and store.DirectoryStore, and the blob store.
type Store interface {
	store.MailboxStore
	ListMailboxes(ctx context.Context, userID int64) ([]store.MailboxStatus, error)
	GetMailbox(ctx context.Context, userID int64, name string) (store.Mailbox, error)
	UsageBytes(ctx context.Context, userID int64) (int64, error)
	GetUserByID(ctx context.Context, id int64) (store.User, error)
	Blobs() store.BlobStore
}

// Authenticator checks passwords and offers SASL mechanisms (implemented by *auth.Service). Failures wrap
// auth.ErrInvalidCredentials or auth.ErrLockedOut; both are answered with the same NO [AUTHENTICATIONFAILED].
type Authenticator interface {
	Authenticate(ctx context.Context, ip netip.Addr, username, password string) (store.User, error)
	// SASLConn starts a SASL exchange; the TLS state lets it run SCRAM-*-PLUS (channel binding) and EXTERNAL
	// (client certificates).
	SASLConn(ctx context.Context, r auth.SASLRequest) (sasl.Server, error)
	// MechanismsFor lists the mechanisms to offer on a connection with this TLS state (nil: no TLS).
	MechanismsFor(tlsState *tls.ConnectionState) []string
}

// Options configure a Server. Zero limits take the defaults noted.
type Options struct {
	Hostname string
	// TLSConfig enables STARTTLS (nil: no STARTTLS). With ImplicitTLS the listener given to Serve is already a TLS
	// listener (port 993) and sessions start as secure.
	TLSConfig          *tls.Config
	ImplicitTLS        bool
	AllowPlaintextAuth bool  // accept LOGIN / AUTHENTICATE before TLS (closed networks only)
	MaxMessageBytes    int64 // APPENDLIMIT; default 50 MiB
	MaxLineBytes       int   // one command line outside literals; default 64 KiB
	MaxConnections     int   // default 2000
	MaxConnsPerIP      int   // default 50 (a client opens several: one per watched folder)
	MaxAuthFailures    int   // per session before BYE; default 3
	CommandsPerSecond  int   // sustained rate per session (bursts of 10x allowed); default 200
	// IdleTimeout ends a session with no command; RFC 9051 5.4 requires at least 30 minutes.
	IdleTimeout time.Duration
	Store       Store
	Auth        Authenticator
	// JunkTrainer, when set, learns from messages users move into or out of Junk (see JunkTrainer).
	JunkTrainer JunkTrainer
	Logger      *slog.Logger
}

// Server serves IMAP sessions.
type Server struct {
	opts   Options
	log    *slog.Logger
	nextID atomic.Uint64
	ctx    context.Context // parent of every session context; cancelled by Shutdown once the grace ends
	cancel context.CancelFunc
	conns  *connserver.Server // accept loop, connection limits, sessions, shutdown (which also runs cancel)
}

// New returns a Server.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Auth == nil {
		return nil, errors.New("imapserver: Store and Auth are required")
	}
	if o.Hostname == "" {
		return nil, errors.New("imapserver: no hostname")
	}
	if o.ImplicitTLS && o.TLSConfig == nil {
		return nil, errors.New("imapserver: ImplicitTLS needs a TLSConfig")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxLineBytes, 64<<10)
	def(&o.MaxConnections, 2000)
	def(&o.MaxConnsPerIP, 50)
	def(&o.MaxAuthFailures, 3)
	def(&o.CommandsPerSecond, 200)
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 50 << 20
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 30 * time.Minute
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
	if _, ok := c.(*tls.Conn); ok {
		return "" // a TLS greeting would need a handshake first; just close
	}
	switch why {
	case connserver.TooMany:
		return "* BYE [UNAVAILABLE] Too many connections, try again later"
	case connserver.TooManyFromIP:
		return "* BYE [UNAVAILABLE] Too many connections from your address"
	}
	return "* BYE [UNAVAILABLE] Server shutting down"
}
