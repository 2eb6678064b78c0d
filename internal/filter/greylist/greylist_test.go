package greylist

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/store"
)

// memKV is store.KV in memory.
type memKV struct {
	mu   sync.Mutex
	m    map[string]kvEntry
	fail bool
}

type kvEntry struct {
	v   []byte
	exp time.Time
}

func (k *memKV) live(key string, now time.Time) (kvEntry, bool) {
	e, ok := k.m[key]
	if !ok || !e.exp.IsZero() && !e.exp.After(now) {
		return kvEntry{}, false
	}
	return e, true
}

func (k *memKV) KVGet(_ context.Context, key string, now time.Time) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail {
		return nil, errors.New("database is locked")
	}
	e, ok := k.live(key, now)
	if !ok {
		return nil, store.ErrNotFound
	}
	return e.v, nil
}

func (k *memKV) KVPut(_ context.Context, key string, v []byte, exp time.Time) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[key] = kvEntry{v, exp}
	return nil
}

func (k *memKV) KVAdd(_ context.Context, key string, d int64, now, exp time.Time) (int64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.live(key, now)
	if !ok {
		e = kvEntry{exp: exp}
	}
	n, _ := strconv.ParseInt(string(e.v), 10, 64)
	n += d
	e.v = []byte(strconv.FormatInt(n, 10))
	k.m[key] = e
	return n, nil
}

func (k *memKV) KVDelete(_ context.Context, key string) error    { delete(k.m, key); return nil }
func (k *memKV) KVPurge(context.Context, time.Time) (int, error) { return 0, nil }

func addr(s string) mail.Address { a, _ := mail.ParseAddress(s); return a }

func TestGreylist(t *testing.T) {
	kv := &memKV{m: map[string]kvEntry{}}
	now := time.Unix(1_700_000_000, 0)
	c, err := New(Options{KV: kv, Delay: 5 * time.Minute, WhitelistAfter: 2, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	try := func(ip, from, to string) filter.Verdict {
		txn := &filter.Txn{Conn: &filter.Conn{IP: netip.MustParseAddr(ip)}, From: addr(from), Values: map[string]any{}}
		return c.Rcpt(context.Background(), txn, addr(to))
	}
	v := try("192.0.2.10", "a@remote.net", "u@example.org")
	if v.Action != filter.Tempfail || v.Code != 451 || v.Enhanced != "4.7.1" || v.Message != "Greylisted, please try again in 300 seconds" {
		t.Fatalf("first sight: %+v", v)
	}
	now = now.Add(time.Minute)
	if v := try("192.0.2.10", "a@remote.net", "u@example.org"); v.Action != filter.Tempfail || v.Message != "Greylisted, please try again in 240 seconds" {
		t.Fatalf("early retry: %+v", v)
	}
	now = now.Add(5 * time.Minute)
	// A retry from another server of the same /24 passes; the case of the addresses does not matter.
	if v := try("192.0.2.77", "A@Remote.net", "u@example.org"); v.Action != filter.Tag || v.Headers[0].Value != "delayed 360 seconds by Postern" {
		t.Fatalf("retry after the delay: %+v", v)
	}
	if v := try("192.0.2.10", "a@remote.net", "u@example.org"); v.Action != filter.Accept {
		t.Fatalf("known triplet: %+v", v)
	}
	if v := try("198.51.100.1", "a@remote.net", "u@example.org"); v.Action != filter.Tempfail {
		t.Fatalf("other network: %+v", v)
	}
	// A second passed triplet whitelists the network: new triplets pass at once.
	try("192.0.2.10", "b@remote.net", "u@example.org")
	now = now.Add(10 * time.Minute)
	try("192.0.2.10", "b@remote.net", "u@example.org")
	if v := try("192.0.2.10", "new@remote.net", "u@example.org"); v.Action != filter.Accept {
		t.Fatalf("whitelisted network: %+v", v)
	}
	// The retry window runs out: a first-seen triplet that never came back starts over.
	try("2001:db8::1", "<>", "u@example.org")
	now = now.Add(49 * time.Hour)
	if v := try("2001:db8::2", "", "u@example.org"); v.Action != filter.Tempfail {
		t.Fatalf("expired wait: %+v", v)
	}
	// Authenticated clients and store failures pass.
	txn := &filter.Txn{Conn: &filter.Conn{IP: netip.MustParseAddr("203.0.113.1"), AuthUser: "u@example.org"}, Values: map[string]any{}}
	if v := c.Rcpt(context.Background(), txn, addr("x@remote.net")); v.Action != filter.Accept {
		t.Fatalf("authenticated: %+v", v)
	}
	kv.fail = true
	if v := try("203.0.113.1", "a@remote.net", "u@example.org"); v.Action != filter.Accept {
		t.Fatalf("store failure: %+v", v)
	}
}

func TestNetwork(t *testing.T) {
	for ip, want := range map[string]string{"192.0.2.77": "192.0.2.0/24", "::ffff:192.0.2.1": "192.0.2.0/24", "2001:db8:1:2:3::9": "2001:db8:1:2::/64"} {
		if got := Network(netip.MustParseAddr(ip)).String(); got != want {
			t.Errorf("%s: %s", ip, got)
		}
	}
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte("w 1700000000"))
	f.Add([]byte("p -1"))
	f.Fuzz(func(t *testing.T, v []byte) {
		state, _, ok := parseState(v)
		if ok && state != v[0] {
			t.Fatalf("%q: state %q", v, state)
		}
	})
}
