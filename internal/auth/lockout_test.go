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

func TestLockoutAccount(t *testing.T) {
	t.Parallel()
	c := newClock()
	l := NewLockout(LockoutOptions{Failures: 100, AccountFailures: 3, Window: time.Minute, Duration: time.Hour, Now: c.Now})
	home := netip.MustParseAddr("192.0.2.1")
	l.SucceedAccount("tim@example.org", home) // the owner's usual client
	for i := 0; i < 3; i++ {                  // a botnet: each address fails once
		if n := l.FailAccount("tim@example.org", netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", i))); n != i+1 {
			t.Errorf("failure %d counted as %d", i+1, n)
		}
	}
	if !l.AccountLocked("tim@example.org", netip.MustParseAddr("203.0.113.9")) {
		t.Error("account not locked for a new client after 3 failures")
	}
	if l.AccountLocked("tim@example.org", home) || l.AccountLocked("ann@example.org", netip.MustParseAddr("203.0.113.9")) {
		t.Error("lock applies to the owner's client or another account")
	}
	if l.Locked(netip.MustParseAddr("198.51.100.1")) {
		t.Error("one failure locked an address")
	}
	c.Advance(time.Hour)
	if l.AccountLocked("tim@example.org", netip.MustParseAddr("203.0.113.9")) {
		t.Error("account still locked after Duration")
	}
	// Trust expires.
	l2 := NewLockout(LockoutOptions{AccountFailures: 1, TrustPeriod: time.Hour, Now: c.Now})
	l2.SucceedAccount("tim@example.org", home)
	c.Advance(2 * time.Hour)
	l2.FailAccount("tim@example.org", netip.MustParseAddr("198.51.100.1"))
	if !l2.AccountLocked("tim@example.org", home) {
		t.Error("a client trusted long ago still passes the account lock")
	}
	// Negative AccountFailures turns the account lock off.
	l3 := NewLockout(LockoutOptions{AccountFailures: -1})
	for i := 0; i < 100; i++ {
		l3.FailAccount("tim@example.org", netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", i)))
	}
	if l3.AccountLocked("tim@example.org", home) {
		t.Error("account locked with AccountFailures < 0")
	}
}

func TestLockoutTrustedBounded(t *testing.T) {
	t.Parallel()
	c := newClock()
	l := NewLockout(LockoutOptions{MaxAccounts: 8, Now: c.Now})
	for i := 0; i < 100; i++ {
		c.Advance(time.Second)
		l.SucceedAccount("tim@example.org", netip.MustParseAddr(fmt.Sprintf("10.0.%d.1", i)))
		l.FailAccount(fmt.Sprintf("u%d@example.org", i), netip.MustParseAddr("10.1.0.1"))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.accounts); n > 8 {
		t.Errorf("%d accounts tracked; cap is 8", n)
	}
	if r := l.accounts["tim@example.org"]; r != nil && len(r.trusted) > maxTrusted {
		t.Errorf("%d trusted clients; cap is %d", len(r.trusted), maxTrusted)
	}
}
