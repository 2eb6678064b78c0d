package store

import (
	"context"
	"time"
)

// KV is a small key-value table with expiry for state the filters keep between connections: greylisting
// triplets and whitelisted clients, daily send counters. Keys are namespaced by their user ("greylist:...").
// An expired key reads as missing; KVPurge removes expired rows for good. Writes are durable like every other
// mutation (they go through the backend's writer).
type KV interface {
	// KVGet returns the value of key; ErrNotFound (wrapped) when it is missing or expired at now.
	KVGet(ctx context.Context, key string, now time.Time) ([]byte, error)
	// KVPut sets key to value until expires (zero: never expires).
	KVPut(ctx context.Context, key string, value []byte, expires time.Time) error
	// KVAdd adds delta to the integer counter at key in one atomic step and returns the new value. A missing or
	// expired key starts from 0 and takes expires (zero: never); an existing one keeps its expiry.
	KVAdd(ctx context.Context, key string, delta int64, now, expires time.Time) (int64, error)
	// KVDelete removes key (no error when it is missing).
	KVDelete(ctx context.Context, key string) error
	// KVPurge removes the keys expired at now and returns how many.
	KVPurge(ctx context.Context, now time.Time) (int, error)
}
