// Package sqlite is the embedded default store: SQLite metadata (modernc.org/sqlite, pure Go, no cgo) plus message
// blobs as files (store/blob/fs), all under one data directory.
//
// Durability: the database runs in WAL mode with synchronous=FULL, so every COMMIT fsyncs the WAL; with NORMAL a
// power loss could drop the last commits, which would lose mail already acknowledged with 250.
// Throughput: concurrent writes (deliveries, APPENDs, STOREs...) share one transaction and so one fsync (group
// commit, see writer.go).
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/postern/postern/internal/store"
	"github.com/postern/postern/internal/store/blob/fs"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Options configure Open.
type Options struct {
	Path        string // database file
	BlobDir     string // message blobs; default: <dir of Path>/blobs
	GroupCommit bool   // let concurrent deliveries share one commit
	MaxBatch    int    // deliveries per group commit; default 256
	Logger      *slog.Logger
}

// Store implements store.Store on SQLite and files.
type Store struct {
	log   *slog.Logger
	rdb   *sql.DB // readers: several connections (WAL lets them run beside the writer)
	wdb   *sql.DB // the one writer connection; BEGIN IMMEDIATE so writers queue instead of failing
	blobs *fs.Store

	group    bool
	maxBatch int
	reqs     chan *job // unbuffered, see do
	notes    *notifier
	stop     chan struct{}  // closed by Close
	wg       sync.WaitGroup // the writer goroutine
	closed   atomic.Bool    // set by Close; new writes are refused
	closeMu  sync.Mutex     // guards closeErr and serializes Close
	closeErr error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating and migrating) the database at opts.Path.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, fmt.Errorf("sqlite: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: create dir: %w", err)
	}
	if opts.BlobDir == "" {
		opts.BlobDir = filepath.Join(filepath.Dir(opts.Path), "blobs")
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	blobs, err := fs.New(opts.BlobDir)
	if err != nil {
		return nil, err
	}
	s := &Store{log: opts.Logger, blobs: blobs, group: opts.GroupCommit, maxBatch: opts.MaxBatch,
		reqs: make(chan *job), stop: make(chan struct{}), notes: newNotifier()}
	if s.wdb, err = openDB(opts.Path, "immediate"); err != nil {
		return nil, err
	}
	s.wdb.SetMaxOpenConns(1)
	if err := migrate(ctx, s.wdb); err != nil {
		s.wdb.Close()
		return nil, err
	}
	if s.rdb, err = openDB(opts.Path, "deferred"); err != nil {
		s.wdb.Close()
		return nil, err
	}
	s.rdb.SetMaxOpenConns(8)
	if s.group {
		s.wg.Add(1)
		go s.writer()
	}
	return s, nil
}

func openDB(path, txlock string) (*sql.DB, error) {
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", txlock)
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return db, nil
}

// Blobs returns the blob store.
func (s *Store) Blobs() store.BlobStore { return s.blobs }

// Close stops the group-commit writer after it has answered every pending job, then closes the databases.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed.Swap(true) {
		return s.closeErr
	}
	close(s.stop)
	s.wg.Wait()
	err1 := s.rdb.Close()
	err2 := s.wdb.Close()
	if err1 != nil {
		s.closeErr = err1
	} else {
		s.closeErr = err2
	}
	return s.closeErr
}

// inTx runs fn in one write transaction.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
