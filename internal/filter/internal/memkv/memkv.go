// Package memkv is store.KV in memory, for the tests of the checks that keep state in the store's KV table
// (greylist, ratelimit): the same expiry rules as the SQLite table (store.KV's doc), and a switch that makes
// every call fail like a locked database.
package memkv

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/postern/postern/internal/store"
)

// ErrFailing is what every call returns while Fail is set.
var ErrFailing = errors.New("memkv: database is locked")

// KV is an in-memory store.KV; the zero value is ready. It is safe for concurrent use.
type KV struct {
	mu   sync.Mutex // guards m and fail
	m    map[string]entry
	fail bool
}

var _ store.KV = (*KV)(nil)

type entry struct {
	v   []byte
	exp time.Time // zero: never
}

// Fail makes every later call fail with ErrFailing (on) or work again (off).
func (k *KV) Fail(on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fail = on
}

// Value returns the stored value of key whatever its expiry, and whether there is one (for assertions).
func (k *KV) Value(key string) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.m[key]
	return string(e.v), ok
}

// Len is the number of keys stored, expired ones included.
func (k *KV) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}

// live returns key's entry unless it is missing or expired at now. k.mu must be held.
func (k *KV) live(key string, now time.Time) (entry, bool) {
	e, ok := k.m[key]
	if !ok || !e.exp.IsZero() && !e.exp.After(now) {
		return entry{}, false
	}
	return e, true
}

// KVGet implements store.KV.
func (k *KV) KVGet(_ context.Context, key string, now time.Time) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail {
		return nil, ErrFailing
	}
	e, ok := k.live(key, now)
	if !ok {
		return nil, store.ErrNotFound
	}
	return append([]byte(nil), e.v...), nil
}

// KVPut implements store.KV.
func (k *KV) KVPut(_ context.Context, key string, v []byte, exp time.Time) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail {
		return ErrFailing
	}
	if k.m == nil {
		k.m = map[string]entry{}
	}
	k.m[key] = entry{append([]byte(nil), v...), exp}
	return nil
}

// KVAdd implements store.KV: a missing or expired key starts from 0 with expiry exp; a live one keeps its own.
func (k *KV) KVAdd(_ context.Context, key string, d int64, now, exp time.Time) (int64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail {
		return 0, ErrFailing
	}
	e, ok := k.live(key, now)
	if !ok {
		e = entry{exp: exp}
	}
	n, _ := strconv.ParseInt(string(e.v), 10, 64)
	n += d
	e.v = strconv.AppendInt(nil, n, 10)
	if k.m == nil {
		k.m = map[string]entry{}
	}
	k.m[key] = e
	return n, nil
}

// KVDelete implements store.KV.
func (k *KV) KVDelete(_ context.Context, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail {
		return ErrFailing
	}
	delete(k.m, key)
	return nil
}

// KVPurge implements store.KV.
func (k *KV) KVPurge(_ context.Context, now time.Time) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail {
		return 0, ErrFailing
	}
	n := 0
	for key, e := range k.m {
		if !e.exp.IsZero() && !e.exp.After(now) {
			delete(k.m, key)
			n++
		}
	}
	return n, nil
}
