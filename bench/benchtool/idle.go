package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postern/postern/bench/internal/benchutil"
)

// idleConn is one logged-in IMAP connection sitting in IDLE on its INBOX.
type idleConn struct {
	c    *imapclient.Client
	idle *imapclient.IdleCommand
}

// cmdIdleConns opens conns IMAP connections, each logged in, with INBOX selected and in IDLE (what a desktop or
// phone client keeps open), and reports how much the server's memory grew per connection: RSS and PSS summed
// over the server's whole process tree (Dovecot forks an imap process per connection; Postern is one process).
func cmdIdleConns(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("idleconns", flag.ExitOnError)
	var c common
	c.register(fs)
	addr := fs.String("addr", "127.0.0.1:143", "IMAP server")
	pattern := fs.String("user", "bench%d@bench.test", "user name pattern (%d: 1..users)")
	users := fs.Int("users", 20, "users the connections are spread over")
	pass := fs.String("pass", "", "password of every user")
	conns := fs.Int("conns", 1000, "connections to open")
	root := fs.Int("pid", 0, "the server's (master) process: it and its descendants are measured")
	par := fs.Int("par", 8, "logins in parallel while opening")
	perIP := fs.Int("per-ip", 40, "connections per loopback source address")
	early := fs.Duration("early", 3*time.Second, "first measurement, this long after the last login")
	settle := fs.Duration("settle", 130*time.Second, "final measurement, this long after the last login: past the Go "+
		"runtime's forced GC (every 2 minutes) and the scavenger returning what the logins' argon2id (19 MiB each) left")
	fs.Parse(args)
	if *root == 0 {
		return errors.New("need -pid")
	}
	before, err := benchutil.TreeMemory(*root)
	if err != nil {
		return err
	}
	open, elapsed, firstErr := openIdle(ctx, *addr, *pattern, *users, *pass, *conns, *par, *perIP)
	defer func() {
		for _, ic := range open {
			ic.c.Close()
		}
	}()
	if len(open) == 0 {
		return fmt.Errorf("no connection opened: %w", firstErr)
	}
	opened := time.Now()
	time.Sleep(*early)
	first, err := benchutil.TreeMemory(*root)
	if err != nil {
		return err
	}
	time.Sleep(time.Until(opened.Add(*settle)))
	after, err := benchutil.TreeMemory(*root)
	if err != nil {
		return err
	}
	n := float64(len(open))
	r := benchutil.Result{Workload: fmt.Sprintf("idle%d", *conns), Server: c.server, Run: c.run, Metrics: map[string]float64{
		"conns_open":             n,
		"rss_before_kib":         float64(before.RSSKiB),
		"rss_after_kib":          float64(after.RSSKiB),
		"pss_after_kib":          float64(after.PSSKiB),
		"rss_per_conn_kib":       float64(after.RSSKiB-before.RSSKiB) / n,
		"pss_per_conn_kib":       float64(after.PSSKiB-before.PSSKiB) / n,
		"procs_after":            float64(after.Procs),
		"open_s":                 elapsed.Seconds(),
		"logins_per_s":           n / elapsed.Seconds(),
		"pss_per_conn_kib_early": float64(first.PSSKiB-before.PSSKiB) / n,
		"settle_s":               settle.Seconds(),
	}}
	if firstErr != nil {
		r.Note = fmt.Sprintf("%d of %d connections opened; first failure: %v", len(open), *conns, firstErr)
	}
	return benchutil.AppendResult(c.out, r)
}

// openIdle opens up to conns idle connections, par at a time; it gives up after 20 failures in a row (a server
// at its connection limit) and returns what it opened, how long that took and the first failure.
func openIdle(ctx context.Context, addr, pattern string, users int, pass string, conns, par, perIP int) ([]idleConn, time.Duration, error) {
	d := &benchutil.Dialer{PerIP: perIP}
	var (
		mu       sync.Mutex // guards open, firstErr
		open     []idleConn
		firstErr error
		next     atomic.Int64
		failRun  atomic.Int64
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && failRun.Load() < 20 {
				i := int(next.Add(1))
				if i > conns {
					return
				}
				ic, err := openOne(ctx, d, addr, benchutil.User(pattern, (i-1)%users+1), pass)
				mu.Lock()
				if err != nil {
					failRun.Add(1)
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
				} else {
					failRun.Store(0)
					open = append(open, ic)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return open, time.Since(start), firstErr
}

func openOne(ctx context.Context, d *benchutil.Dialer, addr, user, pass string) (idleConn, error) {
	c, err := benchutil.LoginIMAP(ctx, d, addr, user, pass, nil)
	if err != nil {
		return idleConn{}, err
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		c.Close()
		return idleConn{}, fmt.Errorf("select: %w", err)
	}
	idle, err := c.Idle()
	if err != nil {
		c.Close()
		return idleConn{}, fmt.Errorf("idle: %w", err)
	}
	return idleConn{c: c, idle: idle}, nil
}
