package auth

import (
	"net/netip"
	"sync"
	"time"
)

// LockoutOptions configure a Lockout; zero values take the defaults (10 failures in 10 minutes -> 15 minutes per
// client; 30 failures in 10 minutes -> 15 minutes per account, for clients that have not logged into it lately).
type LockoutOptions struct {
	Failures int
	Window   time.Duration
	Duration time.Duration
	Now      func() time.Time
	MaxIPs   int // client networks tracked at most (memory bound); default 100000

	// AccountFailures failed logins for one account within Window, from any clients, lock the account for
	// Duration against every client that has not logged into it within TrustPeriod: a botnet spreading its guesses
	// over many addresses (each far below Failures) is stopped, while the owner's usual clients keep working.
	// Negative: no account lockout.
	AccountFailures int
	TrustPeriod     time.Duration // default 30 days
	MaxAccounts     int           // accounts tracked at most; default 100000
}

// Lockout counts failed logins per client network (an IPv4 address or an IPv6 /64) and per account, and refuses
// authentication from a client that failed Failures times within Window, for Duration (and likewise for an
// account, see LockoutOptions.AccountFailures). It is safe for concurrent use; a nil *Lockout never locks.
type Lockout struct {
	opts     LockoutOptions
	mu       sync.Mutex // guards ips, accounts
	ips      map[netip.Prefix]*record
	accounts map[string]*accountRecord
}

type record struct {
	fails       []time.Time // failures within the window
	lockedUntil time.Time
}

// accountRecord is the failure record of one account plus the clients that logged into it recently.
type accountRecord struct {
	record
	trusted map[netip.Prefix]time.Time // client -> last successful login
}

// maxTrusted bounds the trusted clients remembered per account; the oldest is forgotten first.
const maxTrusted = 16

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
	if o.AccountFailures == 0 {
		o.AccountFailures = 30
	}
	if o.TrustPeriod <= 0 {
		o.TrustPeriod = 30 * 24 * time.Hour
	}
	if o.MaxAccounts <= 0 {
		o.MaxAccounts = 100000
	}
	return &Lockout{opts: o, ips: map[netip.Prefix]*record{}, accounts: map[string]*accountRecord{}}
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

// AccountLocked reports whether account is locked against ip: it failed too often lately and ip has not logged
// into it within the trust period.
func (l *Lockout) AccountLocked(account string, ip netip.Addr) bool {
	if l == nil || account == "" || l.opts.AccountFailures < 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.accounts[account]
	if r == nil {
		return false
	}
	now := l.opts.Now()
	if !now.Before(r.lockedUntil) {
		return false
	}
	last, ok := r.trusted[key(ip)]
	return !ok || now.Sub(last) >= l.opts.TrustPeriod
}

// Fail records a failed attempt from ip.
func (l *Lockout) Fail(ip netip.Addr) { l.FailAccount("", ip) }

// FailAccount records a failed attempt from ip for account ("" when the client named none) and returns how many
// failures the client or the account (whichever is more) has within the window, this one included; Service grows
// the failure delay with it.
func (l *Lockout) FailAccount(account string, ip netip.Addr) int {
	if l == nil {
		return 1
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.opts.Now()
	n := 1
	if ip.IsValid() {
		k := key(ip)
		r := l.ips[k]
		if r == nil {
			if len(l.ips) >= l.opts.MaxIPs {
				prune(l.ips, l.opts.MaxIPs, func(r *record) bool { return r.idle(now, l.opts.Window) })
			}
			r = &record{}
			l.ips[k] = r
		}
		n = r.fail(now, l.opts.Window, l.opts.Failures, l.opts.Duration)
	}
	if account != "" && l.opts.AccountFailures > 0 {
		r := l.accounts[account]
		if r == nil {
			if len(l.accounts) >= l.opts.MaxAccounts {
				prune(l.accounts, l.opts.MaxAccounts, func(r *accountRecord) bool {
					return r.idle(now, l.opts.Window) && len(r.trusted) == 0
				})
			}
			r = &accountRecord{}
			l.accounts[account] = r
		}
		n = max(n, r.fail(now, l.opts.Window, l.opts.AccountFailures, l.opts.Duration))
	}
	return n
}

// fail records one failure at now and locks the record when it reaches limit within window; it returns the
// failures counted (the count restarts after a lock).
func (r *record) fail(now time.Time, window time.Duration, limit int, lock time.Duration) int {
	kept := r.fails[:0]
	for _, t := range r.fails {
		if now.Sub(t) < window {
			kept = append(kept, t)
		}
	}
	r.fails = append(kept, now)
	n := len(r.fails)
	if n >= limit {
		r.lockedUntil = now.Add(lock)
		r.fails = nil
	}
	return n
}

// idle reports whether the record neither locks nor holds a failure within the window.
func (r *record) idle(now time.Time, window time.Duration) bool {
	return !now.Before(r.lockedUntil) && (len(r.fails) == 0 || now.Sub(r.fails[len(r.fails)-1]) >= window)
}

// Succeed forgets the failures of ip.
func (l *Lockout) Succeed(ip netip.Addr) { l.SucceedAccount("", ip) }

// SucceedAccount forgets the failures of ip and remembers ip as a trusted client of account. The account's own
// failures stay counted: a success from one client says nothing about guesses from others.
func (l *Lockout) SucceedAccount(account string, ip netip.Addr) {
	if l == nil || !ip.IsValid() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := key(ip)
	delete(l.ips, k)
	if account == "" || l.opts.AccountFailures < 0 {
		return
	}
	r := l.accounts[account]
	if r == nil {
		if len(l.accounts) >= l.opts.MaxAccounts {
			now := l.opts.Now()
			prune(l.accounts, l.opts.MaxAccounts, func(r *accountRecord) bool { return r.idle(now, l.opts.Window) })
		}
		r = &accountRecord{}
		l.accounts[account] = r
	}
	if r.trusted == nil {
		r.trusted = map[netip.Prefix]time.Time{}
	}
	if _, ok := r.trusted[k]; !ok && len(r.trusted) >= maxTrusted {
		var oldest netip.Prefix
		for p, t := range r.trusted {
			if !oldest.IsValid() || t.Before(r.trusted[oldest]) {
				oldest = p
			}
		}
		delete(r.trusted, oldest)
	}
	r.trusted[k] = l.opts.Now()
}

// prune makes room for a new entry: it drops entries that are idle, and when that is not enough (many locked
// clients), an eighth of the rest chosen at random, so memory stays bounded and the cost of pruning is shared over
// many insertions. Forgetting a locked client only lifts its lock early.
func prune[K comparable, V any](m map[K]V, limit int, idle func(V) bool) {
	for k, v := range m {
		if idle(v) {
			delete(m, k)
		}
	}
	if len(m) < limit {
		return
	}
	evict := limit/8 + 1
	for k := range m { // map iteration order is random
		if evict == 0 {
			break
		}
		delete(m, k)
		evict--
	}
}
