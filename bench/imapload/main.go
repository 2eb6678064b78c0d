// Command imapload is the IMAP load generator of the side-by-side benchmarks: clients concurrent IMAP sessions,
// each logged in as its own user, repeat a mixed round of commands for a fixed time, and the command rate and
// latencies go to a results file (see bench/run.sh).
//
// A round, as a mail client does it when the user works through a folder:
//
//	SELECT INBOX
//	FETCH the newest 20 (UID FLAGS ENVELOPE BODY.PEEK[HEADER])    message list
//	FETCH one message (BODY.PEEK[])                                reading it
//	STORE one message +FLAGS/-FLAGS (\Seen) or (\Flagged)          marking it
//	SEARCH UNSEEN HEADER Subject "topic N"                         a quick search
//	APPEND a 4 KiB message                                         saving a draft / a sent copy
//	STORE the first message +FLAGS (\Deleted), EXPUNGE            deleting one (the mailbox keeps its size)
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postern/postern/bench/internal/benchutil"
)

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:143", "IMAP server (plain TCP; both servers allow plaintext LOGIN for the run)")
	flag.StringVar(&o.pattern, "user", "bench%d@bench.test", "user name pattern (%d: 1..users)")
	flag.IntVar(&o.users, "users", 20, "users; client i logs in as user i mod users")
	flag.StringVar(&o.pass, "pass", "", "password of every user")
	flag.IntVar(&o.clients, "clients", 20, "concurrent sessions")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "how long to run")
	flag.IntVar(&o.size, "size", 4096, "size of APPENDed messages")
	flag.StringVar(&o.out, "out", "-", "results file (JSON Lines) to append to; - for standard output")
	flag.StringVar(&o.server, "server", "", "name of the server under test in the results")
	flag.IntVar(&o.run, "run", 1, "run number")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "imapload:", err)
		os.Exit(1)
	}
}

type options struct {
	addr, pattern, pass, out, server string
	users, clients, size, run        int
	duration                         time.Duration
}

// ops are the command names in the results, in round order.
var ops = []string{"select", "fetch_headers", "fetch_body", "store", "search", "append", "expunge"}

// latencies collects one client's command latencies by command name.
type latencies map[string][]time.Duration

func run(ctx context.Context, o options) error {
	d := &benchutil.Dialer{PerIP: 20}
	clients := make([]*imapclient.Client, o.clients)
	for i := range clients {
		c, err := benchutil.LoginIMAP(ctx, d, o.addr, benchutil.User(o.pattern, i%o.users+1), o.pass, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		clients[i] = c
	}
	results := make([]latencies, o.clients)
	errs := make([]error, o.clients)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(o.duration)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = session(ctx, c, i, o.size, deadline)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	all := latencies{}
	var total []time.Duration
	for _, l := range results {
		for op, ds := range l {
			all[op] = append(all[op], ds...)
			total = append(total, ds...)
		}
	}
	m := map[string]float64{
		"ops_per_s": float64(len(total)) / elapsed.Seconds(),
		"p50_ms":    benchutil.Ms(benchutil.Percentile(total, 50)),
		"p99_ms":    benchutil.Ms(benchutil.Percentile(total, 99)),
		"clients":   float64(o.clients),
		"rounds":    float64(len(all["select"])),
	}
	for _, op := range ops {
		m[op+"_p50_ms"] = benchutil.Ms(benchutil.Percentile(all[op], 50))
		m[op+"_p99_ms"] = benchutil.Ms(benchutil.Percentile(all[op], 99))
	}
	return benchutil.AppendResult(o.out, benchutil.Result{Workload: "imap", Server: o.server, Run: o.run, Metrics: m})
}

// session runs rounds on c until deadline; the last round is finished, not cut.
func session(ctx context.Context, c *imapclient.Client, id, size int, deadline time.Time) (latencies, error) {
	l := latencies{}
	rnd := rand.New(rand.NewPCG(uint64(id), 42))
	timed := func(op string, f func() error) error {
		t := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("client %d %s: %w", id, op, err)
		}
		l[op] = append(l[op], time.Since(t))
		return nil
	}
	for round := 0; time.Now().Before(deadline) && ctx.Err() == nil; round++ {
		if err := oneRound(c, rnd, round, id, size, timed); err != nil {
			return l, err
		}
	}
	return l, nil
}

func oneRound(c *imapclient.Client, rnd *rand.Rand, round, id, size int, timed func(string, func() error) error) error {
	var n uint32
	if err := timed("select", func() error {
		d, err := c.Select("INBOX", nil).Wait()
		if err == nil {
			n = d.NumMessages
		}
		return err
	}); err != nil {
		return err
	}
	if n < 2 {
		return fmt.Errorf("client %d: INBOX has %d messages; fill it first", id, n)
	}
	head := &imap.FetchOptions{UID: true, Flags: true, Envelope: true,
		BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, Peek: true}}}
	var list imap.SeqSet
	list.AddRange(max(1, n-19), n)
	pick := imap.SeqSetNum(1 + rnd.Uint32N(n))
	flag := []imap.Flag{imap.FlagSeen, imap.FlagFlagged}[round%2]
	op := []imap.StoreFlagsOp{imap.StoreFlagsAdd, imap.StoreFlagsDel}[round/2%2]
	msg := benchutil.Message(1_000_000+id*100_000+round, size, "bench@bench.test")
	steps := []struct {
		op string
		f  func() error
	}{
		{"fetch_headers", func() error { _, err := c.Fetch(list, head).Collect(); return err }},
		{"fetch_body", func() error {
			_, err := c.Fetch(pick, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
			return err
		}},
		{"store", func() error {
			return c.Store(pick, &imap.StoreFlags{Op: op, Silent: true, Flags: []imap.Flag{flag}}, nil).Close()
		}},
		{"search", func() error {
			_, err := c.Search(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen},
				Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: fmt.Sprintf("topic %d", round%10)}}}, nil).Wait()
			return err
		}},
		{"append", func() error {
			a := c.Append("INBOX", int64(len(msg)), nil)
			if _, err := a.Write(msg); err != nil {
				return err
			}
			if err := a.Close(); err != nil {
				return err
			}
			_, err := a.Wait()
			return err
		}},
		{"store", func() error {
			return c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
				Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
		}},
		{"expunge", func() error { return c.Expunge().Close() }},
	}
	for _, s := range steps {
		if err := timed(s.op, s.f); err != nil {
			return err
		}
	}
	return nil
}
