package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/postern/postern/internal/store"
)

func TestKV(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "kv.db"), GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Unix(1_700_000_000, 0)
	if _, err := st.KVGet(ctx, "a", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	if err := st.KVPut(ctx, "a", []byte("one"), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if v, err := st.KVGet(ctx, "a", now); err != nil || string(v) != "one" {
		t.Fatalf("get: %q %v", v, err)
	}
	if _, err := st.KVGet(ctx, "a", now.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired key: %v", err)
	}
	for i, want := range []int64{3, 5} {
		n, err := st.KVAdd(ctx, "c", int64(3-i), now, now.Add(time.Minute))
		if err != nil || n != want {
			t.Fatalf("add %d: %d %v", i, n, err)
		}
	}
	// Expired: the counter starts again, with the new expiry.
	if n, err := st.KVAdd(ctx, "c", 1, now.Add(time.Minute), now.Add(2*time.Minute)); err != nil || n != 1 {
		t.Fatalf("add after expiry: %d %v", n, err)
	}
	if v, err := st.KVGet(ctx, "c", now.Add(90*time.Second)); err != nil || string(v) != "1" {
		t.Fatalf("counter value: %q %v", v, err)
	}
	if err := st.KVPut(ctx, "forever", nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if n, err := st.KVPurge(ctx, now.Add(3*time.Hour)); err != nil || n != 2 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if _, err := st.KVGet(ctx, "forever", now.Add(1000*time.Hour)); err != nil {
		t.Fatalf("key without expiry: %v", err)
	}
	if err := st.KVDelete(ctx, "forever"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.KVGet(ctx, "forever", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
}
