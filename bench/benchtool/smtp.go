package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/bench/internal/benchutil"
)

// cmdSMTP times Postfix's smtp-source against one server and then waits until every message is in the
// recipient's mailbox. Postern answers 250 only once the message is durably in the mailbox, so for it both times
// are the same; Postfix answers 250 once the message is durably in its queue and delivers it afterwards, so it
// gets an acceptance rate and an acceptance+delivery rate.
func cmdSMTP(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("smtp", flag.ExitOnError)
	var c common
	c.register(fs)
	addr := fs.String("addr", "127.0.0.1:25", "SMTP server")
	sessions := fs.Int("sessions", 20, "parallel SMTP sessions (smtp-source -s)")
	size := fs.Int("size", 4096, "message payload bytes (smtp-source -l)")
	count := fs.Int("count", 5000, "messages (smtp-source -m)")
	to := fs.String("to", "", "recipient")
	maildir := fs.String("maildir", "", "Maildir to watch until all messages are delivered (Postfix)")
	countCmd := fs.String("count-cmd", "", "shell command printing the recipient's message count (Postern)")
	fs.Parse(args)
	if *to == "" || (*maildir == "") == (*countCmd == "") {
		return errors.New("need -to and one of -maildir, -count-cmd")
	}
	counter := func() (int, error) { return maildirCount(*maildir) }
	if *countCmd != "" {
		counter = func() (int, error) { return cmdCount(ctx, *countCmd) }
	}
	before, err := counter()
	if err != nil {
		return err
	}
	// -d: a session sends its next message over the same connection, as a busy MTA peer does.
	cmd := exec.CommandContext(ctx, "smtp-source", "-4", "-d", "-s", strconv.Itoa(*sessions), "-l", strconv.Itoa(*size),
		"-m", strconv.Itoa(*count), "-M", "client.sender.test", "-f", "bench@sender.test", "-t", *to, *addr)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("smtp-source: %w", err)
	}
	accepted := time.Since(start)
	poll := 10 * time.Millisecond
	if *countCmd != "" {
		poll = 100 * time.Millisecond
	}
	var n int
	for {
		if n, err = counter(); err != nil {
			return err
		}
		if n-before >= *count {
			break
		}
		if time.Since(start) > accepted*20+time.Minute {
			return fmt.Errorf("only %d of %d messages delivered", n-before, *count)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
	delivered := time.Since(start)
	if *countCmd != "" {
		delivered = accepted // 250 came after the mailbox commit; the poll only confirms it
	}
	return benchutil.AppendResult(c.out, benchutil.Result{Workload: "smtp", Server: c.server, Run: c.run, Metrics: map[string]float64{
		"accept_msgs_per_s":    float64(*count) / accepted.Seconds(),
		"delivered_msgs_per_s": float64(*count) / delivered.Seconds(),
		"accept_s":             accepted.Seconds(),
		"delivered_s":          delivered.Seconds(),
		"messages":             float64(n - before),
	}})
}

func maildirCount(dir string) (int, error) {
	n := 0
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil && !os.IsNotExist(err) {
			return 0, err
		}
		n += len(ents)
	}
	return n, nil
}

func cmdCount(ctx context.Context, shell string) (int, error) {
	out, err := exec.CommandContext(ctx, "sh", "-c", shell).Output()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", shell, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, fmt.Errorf("%s printed %q, not a number", shell, out)
	}
	return n, nil
}
