package connserver

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echo is a session that answers each line and says "bye" when interrupted while idle; busy sessions ignore the
// interrupt until their line is done.
type echo struct {
	c    net.Conn
	busy atomic.Bool
}

func (e *echo) Serve() {
	r := bufio.NewReader(e.c)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if strings.TrimSpace(l) == "slow" {
			e.busy.Store(true)
			r.ReadString('\n') // a command that never ends on its own: only Close stops it
		}
		e.c.Write([]byte("ok " + l))
	}
}
func (e *echo) InterruptIfIdle() {
	if !e.busy.Load() {
		e.c.Write([]byte("bye\r\n"))
		e.c.Close()
	}
}
func (e *echo) Close() { e.c.Close() }

func start(t *testing.T, o Options) (*Server, string, chan error) {
	t.Helper()
	o.NewSession = func(c net.Conn, _ netip.Addr) Session { return &echo{c: c} }
	o.Refuse = func(_ net.Conn, why Refusal) string {
		return map[Refusal]string{ShuttingDown: "closing", TooMany: "too many", TooManyFromIP: "too many from you"}[why]
	}
	s := New(o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	return s, ln.Addr().String(), errc
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func say(t *testing.T, c net.Conn, r *bufio.Reader, line string) string {
	t.Helper()
	c.Write([]byte(line + "\r\n"))
	l, _ := r.ReadString('\n')
	return strings.TrimSpace(l)
}

func TestLimits(t *testing.T) {
	s, addr, _ := start(t, Options{MaxConnections: 3, MaxConnsPerIP: 2})
	defer s.Shutdown(context.Background())
	c1, r1 := dial(t, addr)
	c2, r2 := dial(t, addr)
	if say(t, c1, r1, "a") != "ok a" || say(t, c2, r2, "b") != "ok b" {
		t.Fatal("first two connections not served")
	}
	_, r3 := dial(t, addr)
	if l, _ := r3.ReadString('\n'); strings.TrimSpace(l) != "too many from you" {
		t.Fatalf("third connection from one IP: %q", l)
	}
	c1.Close()
	// The slot is released once the session has ended; a new connection then gets in.
	for i := 0; ; i++ {
		c, r := dial(t, addr)
		if say(t, c, r, "again") == "ok again" {
			break
		}
		if i > 100 {
			t.Fatal("a closed session's slot was never released")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTotalLimit(t *testing.T) {
	s, addr, _ := start(t, Options{MaxConnections: 1, MaxConnsPerIP: 5})
	defer s.Shutdown(context.Background())
	c1, r1 := dial(t, addr)
	say(t, c1, r1, "a")
	_, r2 := dial(t, addr)
	if l, _ := r2.ReadString('\n'); strings.TrimSpace(l) != "too many" {
		t.Fatalf("over the total: %q", l)
	}
}

// idler is an echo session that reports its idle time: from a minute before it was admitted (a silent slowloris
// connection) until its last line.
type idler struct {
	echo
	last atomic.Int64 // unix nanoseconds of the last line
}

func (i *idler) Serve() {
	r := bufio.NewReader(i.c)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return
		}
		i.last.Store(time.Now().UnixNano())
		i.c.Write([]byte("ok " + l))
	}
}

func (i *idler) IdleSince() time.Time { return time.Unix(0, i.last.Load()) }

// TestFullEvictsLongestIdle: when full, a new client gets the slot of the session idle the longest; sessions
// that were active within minEvictIdle are not ended, and with none to end the newcomer is refused.
func TestFullEvictsLongestIdle(t *testing.T) {
	s := New(Options{MaxConnections: 2, MaxConnsPerIP: 10,
		NewSession: func(c net.Conn, _ netip.Addr) Session {
			i := &idler{echo: echo{c: c}}
			i.last.Store(time.Now().Add(-time.Minute).UnixNano())
			return i
		},
		Refuse: func(net.Conn, Refusal) string { return "too many" }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Shutdown(context.Background())
	addr := ln.Addr().String()
	_, silent := dial(t, addr) // a slowloris connection: never says anything
	c2, r2 := dial(t, addr)
	if say(t, c2, r2, "hello") != "ok hello" {
		t.Fatal("second connection not served")
	}
	c3, r3 := dial(t, addr)
	if l, _ := silent.ReadString('\n'); strings.TrimSpace(l) != "bye" {
		t.Fatalf("the silent session was not ended: %q", l)
	}
	if say(t, c3, r3, "me too") != "ok me too" {
		t.Fatal("the newcomer was not served")
	}
	say(t, c2, r2, "still here")
	_, r4 := dial(t, addr)
	if l, _ := r4.ReadString('\n'); strings.TrimSpace(l) != "too many" {
		t.Fatalf("with every session active, a newcomer got %q", l)
	}
	if say(t, c2, r2, "x") != "ok x" || say(t, c3, r3, "y") != "ok y" {
		t.Fatal("an active session was ended")
	}
}

func TestShutdown(t *testing.T) {
	var stopped atomic.Int32
	s, addr, errc := start(t, Options{Stop: func() { stopped.Add(1) }})
	idle, ri := dial(t, addr)
	say(t, idle, ri, "hello")
	busy, _ := dial(t, addr)
	busy.Write([]byte("slow\r\n"))
	time.Sleep(50 * time.Millisecond) // let the busy session start its command
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a busy session = %v, want the deadline", err)
	}
	if l, _ := ri.ReadString('\n'); strings.TrimSpace(l) != "bye" {
		t.Fatalf("idle session not interrupted: %q", l)
	}
	if _, err := busy.Read(make([]byte, 1)); err == nil {
		t.Fatal("busy session not closed at the deadline")
	}
	if n := stopped.Load(); n != 1 {
		t.Fatalf("Stop ran %d times", n)
	}
	if err := <-errc; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	if !s.Closing() {
		t.Fatal("Closing false after Shutdown")
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	if err := s.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown = %v", err)
	}
}
