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
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/postern/postern/internal/store"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("imapserver: server closed")

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
	SASL(ctx context.Context, ip netip.Addr, mech string, onSuccess func(store.User)) (sasl.Server, error)
	Mechanisms() []string
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
	Logger      *slog.Logger
}

// Server serves IMAP sessions.
type Server struct {
	opts    Options
	log     *slog.Logger
	closing atomic.Bool
	nextID  atomic.Uint64
	ctx     context.Context // parent of every session context; cancelled by Shutdown once the grace ends
	cancel  context.CancelFunc

	mu        sync.Mutex // guards listeners, sessions, perIP, total
	listeners map[net.Listener]bool
	sessions  map[*session]bool
	perIP     map[netip.Addr]int
	total     int
	wg        sync.WaitGroup // session goroutines
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
	return &Server{opts: o, log: o.Logger, ctx: ctx, cancel: cancel, listeners: map[net.Listener]bool{},
		sessions: map[*session]bool{}, perIP: map[netip.Addr]int{}}, nil
}

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = true
	s.mu.Unlock()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.admit(c)
	}
}

// isTemporary keeps Serve retrying on errors such as EMFILE instead of ending (net/http does the same).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	var ne net.Error
	return errors.As(err, &t) && t.Temporary() || errors.As(err, &ne) && ne.Timeout()
}

// admit applies the connection limits and starts a session.
func (s *Server) admit(c net.Conn) {
	ip := remoteIP(c)
	s.mu.Lock()
	reason := ""
	switch {
	case s.total >= s.opts.MaxConnections:
		reason = "* BYE [UNAVAILABLE] Too many connections, try again later"
	case s.perIP[ip] >= s.opts.MaxConnsPerIP:
		reason = "* BYE [UNAVAILABLE] Too many connections from your address"
	}
	if reason != "" {
		s.mu.Unlock()
		s.log.Warn("connection refused", "remote", ip.String(), "reason", reason)
		go func() {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, ok := c.(*tls.Conn); !ok { // a TLS greeting would need a handshake first; just close
				fmt.Fprintf(c, "%s\r\n", reason)
			}
			c.Close()
		}()
		return
	}
	s.total++
	s.perIP[ip]++
	sess := newSession(s, c, ip)
	s.sessions[sess] = true
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer s.release(sess, ip)
		sess.serve()
	}()
}

func (s *Server) release(sess *session, ip netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, sess)
	s.total--
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

func remoteIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// Shutdown stops accepting and tells sessions waiting for a command (or in IDLE) "* BYE"; a command in progress
// (an APPEND upload, say) may finish until ctx is done, then every connection is closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	for ln := range s.listeners {
		ln.Close()
	}
	for sess := range s.sessions {
		sess.interruptIfIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for sess := range s.sessions {
			sess.closeConn()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
