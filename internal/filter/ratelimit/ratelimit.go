// Package ratelimit caps how much mail one client IP, one envelope sender and one authenticated user may send
// per hour, and how many recipients the authenticated users of one domain may send to per day (EwoMail's
// per-domain send caps). Over a limit the command gets 451 4.7.1: a well-behaved sender retries later, a
// compromised account or a runaway script is slowed to the limit. Clients the MX listener's access table trusts
// (filter.Conn.Trusted) are neither limited nor counted.
//
// The hourly limits count transactions (MAIL commands) in memory with a sliding window (two fixed windows,
// the older weighted by how much of it still overlaps); they reset on restart, which is harmless for limits
// this coarse. The daily domain caps count recipients (RCPT commands, local ones included) in the store's KV
// table under "ratelimit:day:DOMAIN:YYYY-MM-DD" (UTC), so a restart does not reset a day's count and every node
// on one database shares it.
//
// Config keys (wired by internal/app): [ratelimit] per_ip_hour → Options.PerIP, per_sender_hour → PerSender,
// per_user_hour → PerUser, domain_day → DomainDaily, domain_day_caps → DomainCaps.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/store"
)

// Options configure the check. A zero limit is no limit.
type Options struct {
	PerIP, PerSender, PerUser int // transactions per Window
	// DomainDaily caps the recipients per UTC day of the authenticated users of each domain; DomainCaps
	// overrides it per domain (a cap of 0 there: no cap for that domain).
	DomainDaily int
	DomainCaps  map[string]int
	KV          store.KV      // required for the daily caps
	Window      time.Duration // default 1 hour
	Now         func() time.Time
	Logger      *slog.Logger
}

// Check is the rate-limit check; safe for concurrent use.
type Check struct {
	o Options

	mu        sync.Mutex // guards counters and lastSweep
	counters  map[string]*window
	lastSweep time.Time
}

// window counts events in the current fixed window and the one before.
type window struct {
	start     time.Time // of the current window
	cur, prev int
}

// New returns a Check.
func New(o Options) (*Check, error) {
	if (o.DomainDaily > 0 || len(o.DomainCaps) > 0) && o.KV == nil {
		return nil, errors.New("ratelimit: daily domain caps need a KV store")
	}
	if o.Window <= 0 {
		o.Window = time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	caps := make(map[string]int, len(o.DomainCaps))
	for d, n := range o.DomainCaps {
		caps[strings.ToLower(d)] = n
	}
	o.DomainCaps = caps
	return &Check{o: o, counters: map[string]*window{}}, nil
}

// Name implements filter.Check.
func (c *Check) Name() string { return "ratelimit" }

// clientKey groups IPv6 clients by /64: one host owns a whole /64 and could rotate through it.
func clientKey(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return "ip:" + p.String()
	}
	return "ip:" + ip.String()
}

// Mail implements filter.MailChecker: one transaction against each hourly limit.
func (c *Check) Mail(_ context.Context, t *filter.Txn) filter.Verdict {
	if t.Conn.Trusted { // its refusal would be waived (filter.Conn): do not count it either
		return filter.Verdict{}
	}
	type limit struct {
		key  string
		max  int
		what string
	}
	var ls []limit
	if c.o.PerIP > 0 && t.Conn.IP.IsValid() {
		ls = append(ls, limit{clientKey(t.Conn.IP), c.o.PerIP, "client " + t.Conn.IP.String()})
	}
	if c.o.PerSender > 0 && !t.From.IsZero() {
		ls = append(ls, limit{"from:" + t.From.Key(), c.o.PerSender, "sender " + t.From.Key()})
	}
	if c.o.PerUser > 0 && t.Conn.AuthUser != "" {
		ls = append(ls, limit{"user:" + strings.ToLower(t.Conn.AuthUser), c.o.PerUser, "user " + t.Conn.AuthUser})
	}
	if len(ls) == 0 {
		return filter.Verdict{}
	}
	now := c.o.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweep(now)
	for _, l := range ls {
		if n := c.rate(l.key, now); n >= float64(l.max) {
			return filter.Verdict{Action: filter.Tempfail, Code: 451, Enhanced: "4.7.1",
				Message: "Rate limit exceeded, try again later",
				Reason:  fmt.Sprintf("%s sent %.0f messages in the last %s (limit %d)", l.what, n, c.o.Window, l.max)}
		}
	}
	for _, l := range ls {
		c.counter(l.key, now).cur++
	}
	return filter.Verdict{}
}

// counter returns key's window, rolled forward to now.
func (c *Check) counter(key string, now time.Time) *window {
	w := c.counters[key]
	if w == nil {
		w = &window{start: now.Truncate(c.o.Window)}
		c.counters[key] = w
	}
	switch start := now.Truncate(c.o.Window); {
	case start.Sub(w.start) >= 2*c.o.Window:
		w.start, w.cur, w.prev = start, 0, 0
	case start.After(w.start):
		w.start, w.prev, w.cur = start, w.cur, 0
	}
	return w
}

// rate is the sliding-window count of key at now.
func (c *Check) rate(key string, now time.Time) float64 {
	if c.counters[key] == nil {
		return 0
	}
	w := c.counter(key, now)
	overlap := 1 - float64(now.Sub(w.start))/float64(c.o.Window)
	return float64(w.cur) + float64(w.prev)*overlap
}

// sweep drops counters idle for two windows, once per window, so memory follows the active clients only.
func (c *Check) sweep(now time.Time) {
	if now.Sub(c.lastSweep) < c.o.Window {
		return
	}
	c.lastSweep = now
	start := now.Truncate(c.o.Window)
	for k, w := range c.counters {
		if start.Sub(w.start) >= 2*c.o.Window {
			delete(c.counters, k)
		}
	}
}

// Rcpt implements filter.RcptChecker: one recipient against the daily cap of the authenticated user's domain.
func (c *Check) Rcpt(ctx context.Context, t *filter.Txn, _ mail.Address) filter.Verdict {
	if t.Conn.AuthUser == "" || t.Conn.Trusted || c.o.KV == nil {
		return filter.Verdict{}
	}
	_, domain, ok := strings.Cut(strings.ToLower(t.Conn.AuthUser), "@")
	if !ok {
		return filter.Verdict{}
	}
	limit, set := c.o.DomainCaps[domain]
	if !set {
		limit = c.o.DomainDaily
	}
	if limit <= 0 {
		return filter.Verdict{}
	}
	now := c.o.Now().UTC()
	day := now.Truncate(24 * time.Hour)
	key := "ratelimit:day:" + domain + ":" + day.Format(time.DateOnly)
	n, err := c.o.KV.KVAdd(ctx, key, 1, now, day.Add(48*time.Hour))
	if err != nil {
		c.o.Logger.Warn("ratelimit: daily counter unavailable; not limiting", "domain", domain, "err", err)
		return filter.Verdict{}
	}
	if n > int64(limit) {
		return filter.Verdict{Action: filter.Tempfail, Code: 451, Enhanced: "4.7.1",
			Message: "Daily sending limit reached, try again tomorrow",
			Reason:  fmt.Sprintf("domain %s: %d recipients today (limit %d)", domain, n, limit)}
	}
	return filter.Verdict{}
}
