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
