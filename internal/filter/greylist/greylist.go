// Package greylist defers mail from unknown senders once: the first attempt of a triplet (client network, sender,
// recipient) gets 451 4.7.1 at RCPT; a retry after Delay passes, and the triplet is then remembered for MaxAge.
// Real MTAs retry; much spamware does not. The client network is the IPv4 /24 or IPv6 /64, so a sender's pool of
// outgoing servers retrying from a neighbour address still matches (postgrey's default).
//
// A client network whose triplets passed WhitelistAfter times is whitelisted for MaxAge (postgrey's
// --auto-whitelist-clients): a regular correspondent is delayed only while it is new. Authenticated clients and
// clients the access table trusts (filter.Conn.Trusted) are never greylisted, and leave no triplet. State lives in the store's KV table (keys "greylist:t:..." for triplets, "greylist:c:..." for
// client networks), so it survives restarts and is shared by every node on one database. A store failure lets
// the mail through: greylisting is a nicety, not a reason to refuse.
//
// Config keys (wired by internal/app): [antispam] greylist (on/off), greylist_delay → Options.Delay,
// greylist_retry_window → RetryWindow, greylist_max_age → MaxAge, greylist_whitelist_after → WhitelistAfter.
package greylist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/store"
)

// Options configure the check.
type Options struct {
	KV store.KV // required
	// Delay is how long a first-seen triplet must wait before a retry passes (default 5 minutes). RetryWindow is
	// how long a first-seen triplet waits for that retry (default 2 days). MaxAge is how long a passed triplet or
	// a whitelisted client network is remembered since last seen (default 35 days).
	Delay, RetryWindow, MaxAge time.Duration
	// WhitelistAfter passes whitelist a client network (default 5; negative: never).
	WhitelistAfter int
	Now            func() time.Time // default time.Now
	Logger         *slog.Logger
}

// Check is the greylisting check; safe for concurrent use.
type Check struct {
	o Options
}

// New returns a Check.
func New(o Options) (*Check, error) {
	if o.KV == nil {
		return nil, errors.New("greylist: a KV store is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Delay, 5*time.Minute)
	def(&o.RetryWindow, 48*time.Hour)
	def(&o.MaxAge, 35*24*time.Hour)
	if o.WhitelistAfter == 0 {
		o.WhitelistAfter = 5
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Check{o: o}, nil
}

// Name implements filter.Check.
func (c *Check) Name() string { return "greylist" }

// Network returns the client network of ip: its /24 (IPv4) or /64 (IPv6).
func Network(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}

// tripletKey is the KV key of a triplet. Addresses are in their canonical (case-folded) form; the null
// reverse-path is "<>".
func tripletKey(net netip.Prefix, from, rcpt mail.Address) string {
	f := "<>"
	if !from.IsZero() {
		f = from.Key()
	}
	return "greylist:t:" + net.String() + "|" + f + "|" + rcpt.Key()
}

func clientKey(net netip.Prefix) string { return "greylist:c:" + net.String() }

// Triplet values: "w <unix>" waiting since the first attempt, "p <unix>" passed (last refreshed then).
func parseState(v []byte) (state byte, at time.Time, ok bool) {
	s, n, found := strings.Cut(string(v), " ")
	sec, err := strconv.ParseInt(n, 10, 64)
	if !found || len(s) != 1 || err != nil {
		return 0, time.Time{}, false
	}
	return s[0], time.Unix(sec, 0), true
}

// Rcpt implements filter.RcptChecker.
func (c *Check) Rcpt(ctx context.Context, t *filter.Txn, rcpt mail.Address) filter.Verdict {
	if t.Conn.AuthUser != "" || t.Conn.Trusted || !t.Conn.IP.IsValid() {
		return filter.Verdict{}
	}
	v, err := c.rcpt(ctx, Network(t.Conn.IP), t.From, rcpt)
	if err != nil {
		c.o.Logger.Warn("greylist state unavailable; letting mail through", "err", err)
		return filter.Verdict{}
	}
	return v
}

func (c *Check) rcpt(ctx context.Context, net netip.Prefix, from, rcpt mail.Address) (filter.Verdict, error) {
	now := c.o.Now()
	if c.o.WhitelistAfter > 0 {
		v, err := c.o.KV.KVGet(ctx, clientKey(net), now)
		if err == nil {
			if n, _ := strconv.Atoi(string(v)); n >= c.o.WhitelistAfter {
				return filter.Verdict{}, nil
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return filter.Verdict{}, err
		}
	}
	key := tripletKey(net, from, rcpt)
	v, err := c.o.KV.KVGet(ctx, key, now)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return filter.Verdict{}, err
	}
	state, at, ok := parseState(v)
	switch {
	case err != nil || !ok: // first sight (or an unreadable value: start over)
		if err := c.o.KV.KVPut(ctx, key, fmt.Appendf(nil, "w %d", now.Unix()), now.Add(c.o.RetryWindow)); err != nil {
			return filter.Verdict{}, err
		}
		return c.deferral(c.o.Delay, "first attempt of "+key[len("greylist:t:"):]), nil
	case state == 'w' && now.Sub(at) < c.o.Delay:
		return c.deferral(c.o.Delay-now.Sub(at), "retried too early: "+key[len("greylist:t:"):]), nil
	case state == 'w':
		if err := c.pass(ctx, key, net, now); err != nil {
			return filter.Verdict{}, err
		}
		delayed := now.Sub(at).Round(time.Second)
		return filter.Verdict{Action: filter.Tag, Reason: fmt.Sprintf("passed after %s", delayed),
			Headers: []filter.Header{{Name: "X-Greylist", Value: fmt.Sprintf("delayed %d seconds by Postern", int(delayed.Seconds()))}}}, nil
	case now.Sub(at) > 24*time.Hour: // passed: keep it remembered, refreshing at most daily
		return filter.Verdict{}, c.o.KV.KVPut(ctx, key, fmt.Appendf(nil, "p %d", now.Unix()), now.Add(c.o.MaxAge))
	}
	return filter.Verdict{}, nil
}

// pass marks the triplet passed and counts one pass for its client network.
func (c *Check) pass(ctx context.Context, key string, net netip.Prefix, now time.Time) error {
	if err := c.o.KV.KVPut(ctx, key, fmt.Appendf(nil, "p %d", now.Unix()), now.Add(c.o.MaxAge)); err != nil {
		return err
	}
	if c.o.WhitelistAfter <= 0 {
		return nil
	}
	n, err := c.o.KV.KVAdd(ctx, clientKey(net), 1, now, now.Add(c.o.MaxAge))
	if err == nil && n == int64(c.o.WhitelistAfter) {
		c.o.Logger.Info("greylist: client network whitelisted", "network", net.String(), "passes", n)
	}
	return err
}

// defer_ is the 451 of a greylisted attempt (RFC 6647 2.1: a temporary failure, 4.7.1 per RFC 3463).
func (c *Check) deferral(wait time.Duration, reason string) filter.Verdict {
	secs := int(wait.Round(time.Second).Seconds())
	return filter.Verdict{Action: filter.Tempfail, Code: 451, Enhanced: "4.7.1",
		Message: fmt.Sprintf("Greylisted, please try again in %d seconds", secs), Reason: reason}
}
