// Package enginetest has what the tests of the engine checks (clamav, spamd, rspamd, milter) share: a fake
// engine's listener, an address where nothing answers, one where the engine takes the message and never
// answers, and the test of what on_error makes of both.
package enginetest

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/filter"
)

// Serve listens on network ("tcp" on 127.0.0.1 or "unix" in a temporary directory) and serves each connection
// with handle, in its own goroutine, until the test ends (the cleanup waits for every handler). It returns the
// address in the config's syntax: "tcp:127.0.0.1:PORT" or "unix:/path".
func Serve(t testing.TB, network string, handle func(net.Conn)) string {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "engine.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return network + ":" + ln.Addr().String()
}

// DeadAddr returns a "127.0.0.1:PORT" where nothing listens (a port just closed).
func DeadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// HungAddr returns a "127.0.0.1:PORT" whose server reads all it is sent and never answers.
func HungAddr(t testing.TB) string {
	t.Helper()
	a := Serve(t, "tcp", func(c net.Conn) { io.Copy(io.Discard, c) })
	return strings.TrimPrefix(a, "tcp:")
}

// Message is a filter.Message of raw.
func Message(raw string) *filter.Message {
	return &filter.Message{Size: int64(len(raw)), Open: func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(raw)), nil
	}}
}

// NewFunc makes the check under test for an engine at hostPort ("127.0.0.1:PORT") with the on_error policy.
type NewFunc func(hostPort, onError string) (filter.DataChecker, error)

// TestFailures checks what an engine that cannot answer means for a message: down, each on_error policy gives
// its verdict (tempfail 451 4.7.1, or accept) with a reason for the log; hung, the check returns when the
// context ends, with a tempfail. When the check is a Pinger, Ping must fail against the dead engine.
func TestFailures(t *testing.T, newCheck NewFunc, txn func() *filter.Txn) {
	t.Helper()
	msg := "From: a@example.org\r\nTo: b@example.net\r\nSubject: x\r\n\r\nx\r\n"
	dead := DeadAddr(t)
	for _, tc := range []struct {
		onError string
		want    filter.Action
	}{{"", filter.Tempfail}, {"tempfail", filter.Tempfail}, {"accept", filter.Accept}} {
		c, err := newCheck(dead, tc.onError)
		if err != nil {
			t.Fatal(err)
		}
		v := c.Data(context.Background(), txn(), Message(msg))
		if v.Action != tc.want || v.Reason == "" {
			t.Errorf("engine down, on_error=%q: %+v, want %v with a reason", tc.onError, v, tc.want)
		}
		if v.Action == filter.Tempfail && (v.Code != 451 || v.Enhanced != "4.7.1") {
			t.Errorf("engine down: tempfail reply %+v", v)
		}
		if p, ok := c.(interface{ Ping(context.Context) error }); ok {
			if err := p.Ping(context.Background()); err == nil {
				t.Errorf("Ping with the engine down: no error")
			}
		}
	}
	c, err := newCheck(HungAddr(t), "")
	if err != nil {
		t.Fatal(err)
	}
	// The deadline is not measured: the test only needs Data to return, with a tempfail.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if v := c.Data(ctx, txn(), Message(msg)); v.Action != filter.Tempfail {
		t.Errorf("hung engine: %+v", v)
	}
}
