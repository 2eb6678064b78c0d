// Package connserver is the connection half every Postern protocol server shares: the accept loop (retrying
// temporary errors such as EMFILE with backoff, as net/http does), the connection limits (total and per client IP,
// decided before a session exists), the registry of live sessions and a graceful Shutdown (stop accepting,
// interrupt idle sessions, let commands in flight finish until the deadline, then close every connection).
//
// SMTP, IMAP, POP3 and POP2 differ only in what they say to a refused client and what a session does; those come
// in through Options. No library fits: net/http's server is HTTP-only and go-smtp's is SMTP-only.
package connserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ErrServerClosed is returned by Serve after Shutdown (protocol servers re-export it).
var ErrServerClosed = errors.New("server closed")

// Session is one connection's protocol handler.
type Session interface {
	Serve()           // runs the session until the connection ends
	InterruptIfIdle() // at Shutdown: end the session now if it waits for a command
	Close()           // at the Shutdown deadline: close the connection whatever the session is doing
}

// Idler is implemented by sessions that can tell since when they have been waiting for their client (the zero
// time while a command runs). When the server is full, it ends the session idle the longest to admit a new
// client, so a slowloris holding every slot with silent connections cannot lock real clients out (Postfix's
// stress mode shortens timeouts for the same reason).
type Idler interface {
	IdleSince() time.Time
}

// minEvictIdle is how long a session must have been idle before it may be ended to make room.
const minEvictIdle = 2 * time.Second

// Refusal says why a connection is refused.
type Refusal int

// The reasons of a refusal.
const (
	ShuttingDown Refusal = iota
	TooMany
	TooManyFromIP
)

// Options configure a Server.
type Options struct {
	MaxConnections int // default 1000
	MaxConnsPerIP  int // default 20
	// NewSession makes the session of an admitted connection; it is called with the server's lock held, so it
	// must only build the session, not run it.
	NewSession func(c net.Conn, ip netip.Addr) Session
	// Refuse returns the line sent (with CRLF added) to a refused client, "" to close without a word.
	Refuse func(c net.Conn, why Refusal) string
	// Stop, if set, runs once during Shutdown when the sessions have ended or the deadline came, before
	// connections are force-closed (protocol servers cancel their sessions' context there).
	Stop   func()
	Logger *slog.Logger
}

// Server accepts connections and keeps track of their sessions.
type Server struct {
	opts    Options
	log     *slog.Logger
	closing atomic.Bool

	mu        sync.Mutex // guards listeners, sessions, evicting, perIP, total
	listeners map[net.Listener]bool
	sessions  map[Session]bool
	evicting  map[Session]bool // ended to make room, not counted against MaxConnections
	perIP     map[netip.Addr]int
	total     int
	wg        sync.WaitGroup // session goroutines
}

// New returns a Server.
func New(o Options) *Server {
	if o.MaxConnections <= 0 {
		o.MaxConnections = 1000
	}
	if o.MaxConnsPerIP <= 0 {
		o.MaxConnsPerIP = 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: o, log: o.Logger, listeners: map[net.Listener]bool{}, sessions: map[Session]bool{},
		evicting: map[Session]bool{}, perIP: map[netip.Addr]int{}}
}

// Closing reports whether Shutdown has begun; sessions use it to say goodbye instead of reading the next command.
func (s *Server) Closing() bool { return s.closing.Load() }

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

// Handle applies the connection limits to c and starts its session, as if Serve had accepted it (tests feed
// net.Pipe connections this way).
func (s *Server) Handle(c net.Conn) { s.admit(c) }

// admit applies the connection limits and starts a session.
func (s *Server) admit(c net.Conn) {
	ip := RemoteIP(c)
	s.mu.Lock()
	why, refused := Refusal(0), true
	switch {
	case s.closing.Load():
		why = ShuttingDown
	case s.perIP[ip] >= s.opts.MaxConnsPerIP:
		why = TooManyFromIP
	case s.total-len(s.evicting) >= s.opts.MaxConnections && !s.evictIdle():
		why = TooMany
	default:
		refused = false
	}
	if refused {
		s.mu.Unlock()
		s.refuse(c, ip, why)
		return
	}
	s.total++
	s.perIP[ip]++
	sess := s.opts.NewSession(c, ip)
	s.sessions[sess] = true
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer s.release(sess, ip)
		sess.Serve()
	}()
}

// refuse tells the client why (within 5 seconds, so a stalled client cannot hold the goroutine) and closes.
func (s *Server) refuse(c net.Conn, ip netip.Addr, why Refusal) {
	line := ""
	if s.opts.Refuse != nil {
		line = s.opts.Refuse(c, why)
	}
	s.log.Warn("connection refused", "remote", ip.String(), "reason", line, "why", int(why))
	go func() {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if line != "" {
			fmt.Fprintf(c, "%s\r\n", line)
		}
		c.Close()
	}()
}

// evictIdle ends the session idle the longest (at least minEvictIdle) to make room; it reports whether it found
// one. The caller holds s.mu.
func (s *Server) evictIdle() bool {
	var victim Session
	oldest := time.Now().Add(-minEvictIdle)
	for sess := range s.sessions {
		id, ok := sess.(Idler)
		if !ok || s.evicting[sess] {
			continue
		}
		if since := id.IdleSince(); !since.IsZero() && since.Before(oldest) {
			victim, oldest = sess, since
		}
	}
	if victim == nil {
		return false
	}
	s.evicting[victim] = true
	s.log.Info("connection limit reached: ending the longest idle session", "idle", time.Since(oldest).Round(time.Second))
	victim.InterruptIfIdle()
	return true
}

func (s *Server) release(sess Session, ip netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, sess)
	delete(s.evicting, sess)
	s.total--
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// RemoteIP is the client's address (IPv4-mapped IPv6 unmapped); the zero Addr for a non-TCP connection.
func RemoteIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// Shutdown stops accepting and interrupts idle sessions; sessions busy with a command may finish until ctx is
// done, then Stop runs and every connection is closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	for ln := range s.listeners {
		ln.Close()
	}
	for sess := range s.sessions {
		sess.InterruptIfIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	stop := func() {
		if s.opts.Stop != nil {
			s.opts.Stop()
		}
	}
	select {
	case <-done:
		stop()
		return nil
	case <-ctx.Done():
		stop()
		s.mu.Lock()
		for sess := range s.sessions {
			sess.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// IdleClock implements Idler for a session that embeds it: the session calls Wait when it starts waiting for
// the client and Work when a command arrives. The zero IdleClock reports busy.
type IdleClock struct {
	since atomic.Int64 // unix nanoseconds since the session waits; 0 while it works
}

// Wait marks the session as waiting for its client from now on.
func (c *IdleClock) Wait() { c.since.Store(time.Now().UnixNano()) }

// Work marks the session as busy with a command.
func (c *IdleClock) Work() { c.since.Store(0) }

// IdleSince returns when the session began waiting, the zero time while it works.
func (c *IdleClock) IdleSince() time.Time {
	if n := c.since.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}
