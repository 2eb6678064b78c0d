package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/store"
	"github.com/postern/postern/internal/store/storetest"
)

func opener(group bool) storetest.Opener {
	return func(t *testing.T, dir string) store.Store {
		s, err := Open(context.Background(), Options{Path: filepath.Join(dir, "postern.db"), GroupCommit: group})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func TestConformance(t *testing.T) {
	for _, group := range []bool{true, false} {
		t.Run(fmt.Sprintf("group=%v", group), func(t *testing.T) { storetest.Run(t, opener(group)) })
	}
}

func TestGCBlobs(t *testing.T) {
	ctx := context.Background()
	s := opener(true)(t, t.TempDir()).(*Store)
	defer s.Close()
	orphan, _ := s.Blobs().Put(ctx, strings.NewReader("orphan"))
	kept, _ := s.Blobs().Put(ctx, strings.NewReader("kept"))
	if err := s.Deliver(ctx, &store.Delivery{Blob: kept, Outbound: &store.OutboundMessage{ID: "K", BlobID: kept.ID}}); err != nil {
		t.Fatal(err)
	}
	n, err := s.GCBlobs(ctx, -1)
	if err != nil || n != 1 {
		t.Fatalf("GCBlobs = %d, %v", n, err)
	}
	if _, err := s.Blobs().Open(ctx, orphan.ID); err == nil {
		t.Fatal("orphan survived")
	}
	if r, err := s.Blobs().Open(ctx, kept.ID); err != nil {
		t.Fatal("referenced blob collected")
	} else {
		r.Close()
	}
}

// BenchmarkDeliver measures durable local delivery (blob fsync + metadata commit) with 16 concurrent deliverers per
// core, with and without group commit.
func BenchmarkDeliver(b *testing.B) {
	msg := "Subject: bench\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 64)
	for _, mode := range []struct {
		name  string
		group bool
	}{{"on", true}, {"off", false}} {
		group := mode.group
		b.Run("group="+mode.name, func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, Options{Path: filepath.Join(b.TempDir(), "postern.db"), GroupCommit: group})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.AddDomain(ctx, "example.org"); err != nil {
				b.Fatal(err)
			}
			u, err := s.AddUser(ctx, store.User{Address: "bench@example.org", PasswordHash: "x"})
			if err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(16)
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ref, err := s.Blobs().Put(ctx, strings.NewReader(msg))
					if err == nil {
						err = s.Deliver(ctx, &store.Delivery{Blob: ref, Local: []store.LocalCopy{{UserID: u.ID}}})
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
