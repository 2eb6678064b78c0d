// Package smtpserver is Postern's SMTP server for the MX (25), submission (587) and submissions (465) services.
//
// The protocol engine is our own rather than emersion/go-smtp's server: Postern must control details that server
// fixes for its callers — refusing data pipelined after STARTTLS (CVE-2011-0411 class), going on after an
// over-long line instead of closing, 538 for AUTH before TLS (RFC 4954 4), 503 for commands out of order, an error
// budget per session, bare-LF rejection (SMTP smuggling) and shutdown that lets a DATA in flight finish. go-smtp's
// client, go-sasl's mechanisms and go-message stay in use.
package smtpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/postern/postern/internal/auth"
	"github.com/postern/postern/internal/connserver"
	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/maillog"
	"github.com/postern/postern/internal/store"
)

// Mode selects the service rules.
type Mode int

// The three SMTP services.
const (
	ModeMX          Mode = iota // port 25: mail for local domains; relay only when authenticated or allowed
	ModeSubmission              // port 587: STARTTLS, then AUTH, then mail (RFC 6409)
	ModeSubmissions             // port 465: implicit TLS (RFC 8314), the listener is a TLS listener
)

func (m Mode) String() string {
	return [...]string{"smtp", "submission", "submissions"}[m]
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = connserver.ErrServerClosed

// Directory answers recipient, sender and access questions (implemented by *directory.Directory).
type Directory interface {
	CheckRecipient(ctx context.Context, rcpt mail.Address) (local bool, err error)
	Access(ctx context.Context, ip netip.Addr, keys ...string) (string, error)
	MaySendAs(ctx context.Context, user store.User, from mail.Address) (bool, error)
}

// Authenticator offers SASL mechanisms (implemented by *auth.Service). The TLS state lets it offer and run
// SCRAM-*-PLUS (channel binding) and EXTERNAL (client certificates).
type Authenticator interface {
	SASLConn(ctx context.Context, r auth.SASLRequest) (sasl.Server, error)
	MechanismsFor(tlsState *tls.ConnectionState) []string
}

// Deliverer commits an accepted message (implemented by *delivery.Agent). fs is the connection's filter session,
// whose DATA stage delivery runs on the spooled message; nil when the listener has no filters.
type Deliverer interface {
	Deliver(ctx context.Context, env *mail.Envelope, body io.Reader, fs *filter.Session) error
}

// Filters runs a listener's inbound checks (implemented by *filter.Pipeline): Connect opens the session whose
// HELO, MAIL, RCPT and DATA stages the SMTP session then runs.
type Filters interface {
	Connect(ctx context.Context, c filter.Conn) (*filter.Session, filter.Verdict)
}

// Options configure a Server. Zero limits take the defaults noted.
type Options struct {
	Mode               Mode
	Hostname           string
	TLSConfig          *tls.Config // nil: no STARTTLS
	AllowPlaintextAuth bool
	MaxMessageBytes    int64         // default 50 MiB
	MaxRecipients      int           // default 100
	MaxConnections     int           // default 1000
	MaxConnsPerIP      int           // default 20
	MaxCommands        int           // per session; default 1000
	MaxErrors          int           // bad commands per session; default 20
	ReadTimeout        time.Duration // default 5m (RFC 5321 4.5.3.2)
	Directory          Directory
	Auth               Authenticator
	Deliverer          Deliverer
	Filters            Filters // nil: no checks
	MailLog            *maillog.Logger
	Logger             *slog.Logger
}

// Server serves SMTP sessions.
type Server struct {
	opts   Options
	log    *slog.Logger
	nextID atomic.Uint64
	conns  *connserver.Server // accept loop, connection limits, sessions, shutdown
}

// New returns a Server.
func New(o Options) (*Server, error) {
	if o.Directory == nil || o.Auth == nil || o.Deliverer == nil {
		return nil, errors.New("smtpserver: Directory, Auth and Deliverer are required")
	}
	if o.Hostname == "" {
		return nil, errors.New("smtpserver: no hostname")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxRecipients, 100)
	def(&o.MaxConnections, 1000)
	def(&o.MaxConnsPerIP, 20)
	def(&o.MaxCommands, 1000)
	def(&o.MaxErrors, 20)
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 50 << 20
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: o, log: o.Logger}
	s.conns = connserver.New(connserver.Options{
		MaxConnections: o.MaxConnections, MaxConnsPerIP: o.MaxConnsPerIP, Refuse: refuse, Logger: o.Logger,
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
		return "421 4.7.0 Too many connections, try again later"
	case connserver.TooManyFromIP:
		return "421 4.7.0 Too many connections from your IP"
	}
	return "421 4.3.2 Server shutting down"
}
