package admin

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// IntegrityChecker is implemented by stores that can check their own consistency (store/sqlite does).
type IntegrityChecker interface {
	// CheckIntegrity calls problem once per inconsistency (check: a short name such as "blob" or "quota") and
	// returns how many objects of each kind it examined; quick trades the database's full structural check for a
	// faster one.
	CheckIntegrity(ctx context.Context, quick bool, problem func(check, detail string)) (map[string]int64, error)
	// OrphanBlobs calls fn for every blob file that nothing references.
	OrphanBlobs(ctx context.Context, fn func(id string, size int64, modTime time.Time)) error
	// GCBlobs deletes the unreferenced blob files older than olderThan.
	GCBlobs(ctx context.Context, olderThan time.Duration) (int, error)
}

// DefaultOrphanAge is the age from which an unreferenced blob file is a crash's leftover rather than a delivery
// in flight (whose rows are committed within moments of its file); the server's own collector uses the same.
const DefaultOrphanAge = time.Hour

// CheckOptions configure CheckStore.
type CheckOptions struct {
	Quick     bool          // the database's quick_check instead of integrity_check
	Repair    bool          // delete orphan blob files older than OrphanAge
	OrphanAge time.Duration // default DefaultOrphanAge
}

// Problem is one inconsistency found.
type Problem struct {
	Check  string // e.g. "integrity_check", "blob", "uidnext", "quota", "queue"
	Detail string
}

// Orphan is a blob file nothing references.
type Orphan struct {
	ID      string
	Size    int64
	ModTime time.Time
	Old     bool // older than CheckOptions.OrphanAge: --repair deletes it
}

// CheckReport is what CheckStore found.
type CheckReport struct {
	Counts   map[string]int64 // objects examined, by kind
	Problems []Problem
	Orphans  []Orphan
	Removed  int // orphan blob files deleted (Repair)
}

// Clean reports whether no inconsistency was found. Orphan blob files are not one: they waste space, nothing
// refers to them, and a crash between writing a blob and committing its rows leaves them by design.
func (r *CheckReport) Clean() bool { return len(r.Problems) == 0 }

// ErrNoChecker means the store backend has no integrity check.
var ErrNoChecker = errors.New("this store backend cannot check its integrity")

// CheckStore checks the store's consistency (postern check --store). With o.Repair it then deletes orphan blob
// files older than o.OrphanAge; inconsistencies are never repaired automatically (each needs a human's look).
func (a *Admin) CheckStore(ctx context.Context, o CheckOptions) (*CheckReport, error) {
	c, ok := a.st.(IntegrityChecker)
	if !ok {
		return nil, ErrNoChecker
	}
	if o.OrphanAge <= 0 {
		o.OrphanAge = DefaultOrphanAge
	}
	r := &CheckReport{}
	var err error
	r.Counts, err = c.CheckIntegrity(ctx, o.Quick, func(check, detail string) {
		r.Problems = append(r.Problems, Problem{Check: check, Detail: detail})
	})
	if err != nil {
		return r, fmt.Errorf("check store: %w", err)
	}
	cutoff := time.Now().Add(-o.OrphanAge)
	if err := c.OrphanBlobs(ctx, func(id string, size int64, mod time.Time) {
		r.Orphans = append(r.Orphans, Orphan{ID: id, Size: size, ModTime: mod, Old: mod.Before(cutoff)})
	}); err != nil {
		return r, fmt.Errorf("check store: %w", err)
	}
	if o.Repair {
		if r.Removed, err = c.GCBlobs(ctx, o.OrphanAge); err != nil {
			return r, fmt.Errorf("remove orphan blobs: %w", err)
		}
	}
	return r, nil
}
