package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/store"
)

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("client vanished")
	}
	f.n--
	return copy(p, "partial data "), nil
}

func TestPutOpenDelete(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := s.Put(ctx, strings.NewReader("hello world"))
	if err != nil {
		t.Fatal(err)
	}
	if ref.Size != 11 {
		t.Fatalf("size %d", ref.Size)
	}
	r, err := s.Open(ctx, ref.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "hello world" {
		t.Fatalf("read %q", b)
	}
	ids, err := s.List(ctx, time.Now().Add(time.Minute))
	if err != nil || len(ids) != 1 || ids[0] != ref.ID {
		t.Fatalf("List = %v, %v", ids, err)
	}
	if err := s.Delete(ctx, ref.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, ref.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("open deleted: %v", err)
	}
	if _, err := s.Open(ctx, "../../etc/passwd"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("path traversal id: %v", err)
	}
}

func TestPutFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), &failingReader{n: 3}); err == nil {
		t.Fatal("Put succeeded on a failing reader")
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 0 {
		t.Fatalf("files left behind: %v", files)
	}
}

func TestConcurrentPuts(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	refs := make([]store.BlobRef, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { refs[i], errs[i] = s.Put(ctx, strings.NewReader(fmt.Sprint("blob ", i))) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		r, err := s.Open(ctx, refs[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		if string(b) != fmt.Sprint("blob ", i) {
			t.Fatalf("blob %d reads %q", i, b)
		}
	}
}

func TestNewRemovesStaleTemp(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(dir); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "tmp", "0123-crashed")
	inFlight := filepath.Join(dir, "tmp", "4567-writing") // another process's Put, e.g. the server while a CLI opens the store
	for _, f := range []string{stale, inFlight} {
		if err := os.WriteFile(f, []byte("half a message"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTemp)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temp file survived New: %v", err)
	}
	if _, err := os.Stat(inFlight); err != nil {
		t.Fatalf("New removed a young temp file another process may be writing: %v", err)
	}
}

func TestListAgeAndErrors(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ref, err := s.Put(ctx, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := s.List(ctx, time.Now().Add(-time.Hour)); err != nil || len(ids) != 0 {
		t.Fatalf("List of blobs older than an hour = %v, %v", ids, err)
	}
	if err := s.Delete(ctx, strings.Repeat("ab", 16)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete unknown: %v", err)
	}
	if _, err := s.Open(ctx, strings.ToUpper(ref.ID)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Open with a non-canonical id: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Put(cancelled, strings.NewReader("y")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with cancelled ctx: %v", err)
	}
	if ids, _ := s.List(ctx, time.Now().Add(time.Minute)); len(ids) != 1 {
		t.Fatalf("after cancelled Put: %v", ids)
	}
}
