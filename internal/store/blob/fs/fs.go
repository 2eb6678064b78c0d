// Package fs stores message blobs as files under one directory, durably: a blob is written to a temporary file in
// the same filesystem, fsynced, renamed into place and its directory fsynced before Put returns (the rename is only
// atomic within one filesystem, and only the directory fsync makes the new name survive a power loss).
package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/postern/postern/internal/store"
)

// Store keeps blobs in dir/xx/<id>, where xx is the first two hex digits of the id (256 fan-out directories keep
// each directory small).
type Store struct {
	dir string

	mu      sync.Mutex      // guards durable
	durable map[string]bool // fan-out directories whose entry in dir is known to be fsynced
}

// staleTemp is the age after which a temporary blob file is a crash's leftover. Younger ones may belong to a Put in
// flight in another process on the same data directory: the server is writing mail while a CLI command (or a
// second server starting during a restart) opens the store.
const staleTemp = time.Hour

// New opens (creating) the blob directory and removes temporary files a crash left behind: a blob in tmp was never
// acknowledged, so nobody can be waiting for it once it is older than any Put can take.
func New(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o750); err != nil {
		return nil, fmt.Errorf("blob dir: %w", err)
	}
	stale, err := filepath.Glob(filepath.Join(dir, "tmp", "*"))
	if err != nil {
		return nil, fmt.Errorf("blob dir: %w", err)
	}
	for _, f := range stale {
		info, err := os.Stat(f)
		if err != nil || time.Since(info.ModTime()) < staleTemp {
			continue // gone already, or possibly another process's Put in flight
		}
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale blob: %w", err)
		}
	}
	s := &Store{dir: dir, durable: map[string]bool{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("blob dir: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() && len(e.Name()) == 2 {
			s.durable[e.Name()] = true
		}
	}
	// One fsync makes the directories found above (and tmp) durable, whatever a crash left unsynced.
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return s, nil
}

// newID returns 128 random bits in hex: unguessable, and collisions need no handling.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// validID accepts only what newID makes (32 lower-case hex digits), so an id can never name a path outside dir.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (s *Store) path(id string) string { return filepath.Join(s.dir, id[:2], id) }

// Put writes r to a new blob and returns only when it is durable. On a read error nothing is left behind.
func (s *Store) Put(ctx context.Context, r io.Reader) (store.BlobRef, error) {
	id := newID()
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), id+"-*")
	if err != nil {
		return store.BlobRef{}, fmt.Errorf("create blob: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, ctxReader{ctx, r})
	if err != nil {
		return store.BlobRef{}, fmt.Errorf("write blob: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return store.BlobRef{}, fmt.Errorf("sync blob: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return store.BlobRef{}, fmt.Errorf("close blob: %w", err)
	}
	dir, err := s.fanOut(id[:2])
	if err != nil {
		return store.BlobRef{}, err
	}
	if err := os.Rename(tmp.Name(), s.path(id)); err != nil {
		return store.BlobRef{}, fmt.Errorf("rename blob: %w", err)
	}
	done = true
	if err := syncDir(dir); err != nil {
		os.Remove(s.path(id))
		return store.BlobRef{}, err
	}
	return store.BlobRef{ID: id, Size: n}, nil
}

// fanOut returns the fan-out directory name, creating it and fsyncing its parent when new. The lock makes a
// concurrent Put wait until the directory's own entry is durable; a check of the directory's existence alone would
// let it return before that fsync.
func (s *Store) fanOut(name string) (string, error) {
	dir := filepath.Join(s.dir, name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.durable[name] {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("blob fan-out dir: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return "", err
	}
	s.durable[name] = true
	return dir, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// Open returns the blob's bytes.
func (s *Store) Open(ctx context.Context, id string) (io.ReadCloser, error) {
	if !validID(id) {
		return nil, fmt.Errorf("blob %q: %w", id, store.ErrNotFound)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob: %w", err)
	}
	return f, nil
}

// Delete removes the blob.
func (s *Store) Delete(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("blob %q: %w", id, store.ErrNotFound)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := os.Remove(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete blob: %w", err)
	}
	return nil
}

// List returns the ids of blobs last modified before olderThan.
func (s *Store) List(ctx context.Context, olderThan time.Time) ([]string, error) {
	var ids []string
	err := filepath.WalkDir(s.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "tmp" {
				return filepath.SkipDir
			}
			return ctx.Err()
		}
		if !validID(d.Name()) || !strings.HasPrefix(d.Name(), filepath.Base(filepath.Dir(p))) {
			return nil
		}
		if info, err := d.Info(); err == nil && info.ModTime().Before(olderThan) {
			ids = append(ids, d.Name())
		}
		return nil
	})
	return ids, err
}

// ctxReader stops a copy when ctx is cancelled (a shutdown must not wait on a stalled client forever).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
