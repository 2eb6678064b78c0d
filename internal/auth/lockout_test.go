package auth

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time          { return c.now }
func (c *clock) Advance(d time.Duration) { c.now = c.now.Add(d) }

func newClock() *clock { return &clock{now: time.Unix(1e9, 0)} }

func TestLockoutDefaults(t *testing.T) {
	t.Parallel()
	c := newClock()
	l := NewLockout(LockoutOptions{Now: c.Now})
	ip := netip.MustParseAddr("192.0.2.1")
	for i := 0; i < 9; i++ {
		l.Fail(ip)
	}
	if l.Locked(ip) {
		t.Fatal("locked after 9 failures; default is 10")
	}
	l.Fail(ip)
	if !l.Locked(ip) {
		t.Fatal("not locked after 10 failures")
	}
	c.Advance(15*time.Minute - time.Second)
	if !l.Locked(ip) {
		t.Fatal("unlocked before 15 minutes")
	}
	c.Advance(time.Second)
	if l.Locked(ip) {
		t.Fatal("still locked after 15 minutes")
	}
}

func TestLockoutWindow(t *testing.T) {
	t.Parallel()
	c := newClock()
	l := NewLockout(LockoutOptions{Failures: 3, Window: time.Minute, Duration: time.Hour, Now: c.Now})
	ip := netip.MustParseAddr("192.0.2.1")
	for i := 0; i < 6; i++ { // one failure every 40s: never 3 within a minute
		l.Fail(ip)
		c.Advance(40 * time.Second)
	}
	if l.Locked(ip) {
		t.Fatal("locked by failures spread wider than the window")
	}
	l.Fail(ip)
	l.Succeed(ip) // a success forgets the failures
	l.Fail(ip)
	l.Fail(ip)
	if l.Locked(ip) {
		t.Fatal("failures before a success still counted")
	}
	l.Fail(ip)
	if !l.Locked(ip) {
		t.Fatal("3 failures within the window did not lock")
	}
}

func TestLockoutKeys(t *testing.T) {
	t.Parallel()
	l := NewLockout(LockoutOptions{Failures: 2})
	for _, tt := range []struct {
		fail, probe string
		same        bool
	}{
		{"2001:db8::1", "2001:db8::ffff:1", true},     // same /64
		{"2001:db8:0:1::1", "2001:db8:0:2::1", false}, // another /64
		{"192.0.2.1", "::ffff:192.0.2.1", true},       // IPv4-mapped
		{"198.51.100.1", "198.51.100.2", false},       // IPv4 is per address
	} {
		a, b := netip.MustParseAddr(tt.fail), netip.MustParseAddr(tt.probe)
		l.Fail(a)
		l.Fail(a)
		if got := l.Locked(b); got != tt.same {
			t.Errorf("after failures from %s, Locked(%s) = %v; want %v", a, b, got, tt.same)
		}
	}
	var nilLock *Lockout
	nilLock.Fail(netip.MustParseAddr("192.0.2.1"))
	if nilLock.Locked(netip.MustParseAddr("192.0.2.1")) || l.Locked(netip.Addr{}) {
		t.Error("a nil Lockout or an invalid address locked")
	}
}

func TestLockoutBounded(t *testing.T) {
	t.Parallel()
	c := newClock()
	l := NewLockout(LockoutOptions{Failures: 1, MaxIPs: 64, Now: c.Now}) // every client gets locked
	for i := 0; i < 5000; i++ {
		l.Fail(netip.MustParseAddr(fmt.Sprintf("10.%d.%d.1", i/256, i%256)))
		if n := len(l.ips); n > 64 {
			t.Fatalf("%d entries tracked; cap is 64", n)
		}
	}
	if !l.Locked(netip.MustParseAddr("10.19.135.1")) { // the last one
		t.Error("the newest client is not locked")
	}
}
