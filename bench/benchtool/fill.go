package main

import (
	"context"
	"flag"
	"fmt"
	"sync"

	"github.com/emersion/go-imap/v2"

	"github.com/postern/postern/bench/internal/benchutil"
)

// cmdFill APPENDs count messages into the INBOX of each user, users in parallel: the same messages the same way
// into every server, before the IMAP and POP3 workloads.
func cmdFill(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fill", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:143", "IMAP server")
	pattern := fs.String("user", "bench%d@bench.test", "user name pattern (%d: 1..users)")
	users := fs.Int("users", 1, "users")
	pass := fs.String("pass", "", "password of every user")
	count := fs.Int("count", 100, "messages per user")
	size := fs.Int("size", 4096, "approximate message size")
	fs.Parse(args)
	d := &benchutil.Dialer{PerIP: 10}
	var wg sync.WaitGroup
	errs := make([]error, *users)
	for u := range *users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[u] = fillUser(ctx, d, *addr, benchutil.User(*pattern, u+1), *pass, *count, *size)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func fillUser(ctx context.Context, d *benchutil.Dialer, addr, user, pass string, count, size int) error {
	c, err := benchutil.LoginIMAP(ctx, d, addr, user, pass, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	for i := range count {
		msg := benchutil.Message(i, size, user)
		var flags []imap.Flag
		if i%3 == 0 {
			flags = []imap.Flag{imap.FlagSeen}
		}
		cmd := c.Append("INBOX", int64(len(msg)), &imap.AppendOptions{Flags: flags})
		if _, err := cmd.Write(msg); err != nil {
			return fmt.Errorf("append for %s: %w", user, err)
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("append for %s: %w", user, err)
		}
		if _, err := cmd.Wait(); err != nil {
			return fmt.Errorf("append for %s: %w", user, err)
		}
	}
	return c.Logout().Wait()
}
