package auth

import (
	"net/netip"
	"sync"
	"time"
)

// LockoutOptions configure a Lockout; zero values take the defaults (10 failures in 10 minutes -> 15 minutes).
type LockoutOptions struct {
	Failures int
	Window   time.Duration
	Duration time.Duration
	Now      func() time.Time
	MaxIPs   int // client networks tracked at most (memory bound); default 100000
}

// Lockout counts failed logins per client network (an IPv4 address or an IPv6 /64) and refuses authentication
// from one that failed Failures times within Window, for Duration. It is safe for concurrent use; a nil *Lockout
// never locks.
type Lockout struct {
	opts LockoutOptions
	mu   sync.Mutex // guards ips
	ips  map[netip.Prefix]*record
}

type record struct {
	fails       []time.Time // failures within the window
	lockedUntil time.Time
}

// NewLockout returns a Lockout.
func NewLockout(o LockoutOptions) *Lockout {
	if o.Failures <= 0 {
		o.Failures = 10
	}
	if o.Window <= 0 {
		o.Window = 10 * time.Minute
	}
	if o.Duration <= 0 {
		o.Duration = 15 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxIPs <= 0 {
		o.MaxIPs = 100000
	}
	return &Lockout{opts: o, ips: map[netip.Prefix]*record{}}
}

// key groups IPv6 clients by /64: one host usually owns a whole /64.
func key(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// Locked reports whether ip may not authenticate now.
func (l *Lockout) Locked(ip netip.Addr) bool {
	if l == nil || !ip.IsValid() {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.ips[key(ip)]
	return r != nil && l.opts.Now().Before(r.lockedUntil)
}

// Fail records a failed attempt from ip.
func (l *Lockout) Fail(ip netip.Addr) {
	if l == nil || !ip.IsValid() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.opts.Now()
	k := key(ip)
	r := l.ips[k]
	if r == nil {
		if len(l.ips) >= l.opts.MaxIPs {
			l.prune(now)
		}
		r = &record{}
		l.ips[k] = r
	}
	kept := r.fails[:0]
	for _, t := range r.fails {
		if now.Sub(t) < l.opts.Window {
			kept = append(kept, t)
		}
	}
	r.fails = append(kept, now)
	if len(r.fails) >= l.opts.Failures {
		r.lockedUntil = now.Add(l.opts.Duration)
		r.fails = nil
	}
}

// Succeed forgets the failures of ip.
func (l *Lockout) Succeed(ip netip.Addr) {
	if l == nil || !ip.IsValid() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.ips, key(ip))
}

// prune makes room for a new entry: it drops entries that are neither locked nor have recent failures, and when
// that is not enough (many locked clients), an eighth of the rest chosen at random, so memory stays bounded and the
// cost of pruning is shared over many insertions. Forgetting a locked client only lifts its lock early.
func (l *Lockout) prune(now time.Time) {
	for k, r := range l.ips {
		if !now.Before(r.lockedUntil) && (len(r.fails) == 0 || now.Sub(r.fails[len(r.fails)-1]) >= l.opts.Window) {
			delete(l.ips, k)
		}
	}
	if len(l.ips) < l.opts.MaxIPs {
		return
	}
	evict := l.opts.MaxIPs/8 + 1
	for k := range l.ips { // map iteration order is random
		if evict == 0 {
			break
		}
		delete(l.ips, k)
		evict--
	}
}
