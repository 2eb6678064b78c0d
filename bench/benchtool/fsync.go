package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/postern/postern/bench/internal/benchutil"
)

// cmdFsync measures what the disk allows a durable mail server: how many 4 KiB records per second can be made
// durable one at a time (append + fdatasync; new file + fsync + directory fsync, as a Maildir or blob store
// does), in batches (one fdatasync per batch: the group-commit ceiling), and with parallel writers (what many
// concurrent sessions each fsyncing get from the device).
func cmdFsync(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fsync", flag.ExitOnError)
	var c common
	c.register(fs)
	dir := fs.String("dir", os.TempDir(), "directory on the disk to measure (the servers' data disk)")
	n := fs.Int("n", 1000, "records per mode")
	batch := fs.Int("batch", 32, "records per fdatasync in batched mode")
	par := fs.Int("parallel", 16, "writers in parallel mode")
	fs.Parse(args)
	d, err := os.MkdirTemp(*dir, "fsync-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(d)
	rec := make([]byte, 4096)
	m := map[string]float64{}
	single, err := appendSync(filepath.Join(d, "single"), rec, *n, 1)
	if err != nil {
		return err
	}
	m["append_fdatasync_per_s"] = single
	batched, err := appendSync(filepath.Join(d, "batched"), rec, *n**batch/4, *batch)
	if err != nil {
		return err
	}
	m["append_batched_records_per_s"] = batched
	files, err := newFiles(ctx, filepath.Join(d, "files"), rec, *n, 1)
	if err != nil {
		return err
	}
	m["newfile_fsync_dirsync_per_s"] = files
	pfiles, err := newFiles(ctx, filepath.Join(d, "pfiles"), rec, *n*2, *par)
	if err != nil {
		return err
	}
	m["newfile_parallel_per_s"] = pfiles
	m["batch"], m["parallel"] = float64(*batch), float64(*par)
	return benchutil.AppendResult(c.out, benchutil.Result{Workload: "fsync", Server: "disk", Run: c.run, Metrics: m})
}

// appendSync appends n records to one file, fdatasyncing after every batch of them; it returns records/s.
func appendSync(path string, rec []byte, n, batch int) (float64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	for i := 1; i <= n; i++ {
		if _, err := f.Write(rec); err != nil {
			return 0, err
		}
		if i%batch == 0 || i == n {
			if err := fdatasync(f); err != nil {
				return 0, err
			}
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// newFiles creates n files of one record each with par writers, each file fsynced and its directory fsynced,
// like a durable Maildir delivery or a blob write; it returns files/s.
func newFiles(ctx context.Context, dir string, rec []byte, n, par int) (float64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	dirf, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer dirf.Close()
	var wg sync.WaitGroup
	errs := make([]error, par)
	start := time.Now()
	for w := range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n && ctx.Err() == nil; i += par {
				if err := writeFile(filepath.Join(dir, fmt.Sprint(i)), rec, dirf); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), ctx.Err()
}

func writeFile(path string, rec []byte, dir *os.File) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(rec); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return dir.Sync()
}
