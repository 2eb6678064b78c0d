package fs

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
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
