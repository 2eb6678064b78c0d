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
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/postern/postern/internal/auth"
	"github.com/postern/postern/internal/store"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("pop3server: server closed")

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
	opts    Options
	log     *slog.Logger
	closing atomic.Bool
	nextID  atomic.Uint64
	ctx     context.Context // parent of every session context; cancelled when Shutdown gives up waiting
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
	case s.closing.Load():
		reason = "-ERR [SYS/TEMP] Server shutting down"
	case s.total >= s.opts.MaxConnections:
		reason = "-ERR [SYS/TEMP] Too many connections, try again later"
	case s.perIP[ip] >= s.opts.MaxConnsPerIP:
		reason = "-ERR [SYS/TEMP] Too many connections from your address"
	}
	if reason != "" {
		s.mu.Unlock()
		s.log.Warn("connection refused", "remote", ip.String(), "reason", reason)
		go func() {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "%s\r\n", reason)
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

// Shutdown stops accepting and ends idle sessions with -ERR [SYS/TEMP] (without entering UPDATE, so nothing is
// deleted); a command in progress (a RETR being sent, the deletions of a QUIT) may finish until ctx is done, then
// every connection is closed.
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
