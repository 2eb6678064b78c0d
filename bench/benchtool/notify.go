package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/bench/internal/benchutil"
)

// cmdNotify measures how long a message takes from the end of its SMTP DATA (the client sends the final ".") to
// the untagged EXISTS on an IMAP connection idling on the recipient's INBOX. Messages go one at a time with a
// short pause, so the number is the latency of one message, not of a batch.
func cmdNotify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("notify", flag.ExitOnError)
	var c common
	c.register(fs)
	imapAddr := fs.String("imap", "127.0.0.1:143", "IMAP server")
	smtpAddr := fs.String("smtp", "127.0.0.1:25", "SMTP server that delivers to the IMAP server's store")
	user := fs.String("user", "", "recipient and IMAP user")
	pass := fs.String("pass", "", "IMAP password")
	count := fs.Int("count", 200, "messages")
	pause := fs.Duration("pause", 20*time.Millisecond, "pause between messages")
	fs.Parse(args)

	exists := make(chan uint32, 64)
	opts := &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	}}
	ic, err := benchutil.LoginIMAP(ctx, &benchutil.Dialer{}, *imapAddr, *user, *pass, opts)
	if err != nil {
		return err
	}
	defer ic.Close()
	sel, err := ic.Select("INBOX", nil).Wait()
	if err != nil {
		return fmt.Errorf("select: %w", err)
	}
	for len(exists) > 0 { // EXISTS of the SELECT itself
		<-exists
	}
	idle, err := ic.Idle()
	if err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	defer idle.Close()

	var sc *smtp.Client
	defer func() {
		if sc != nil {
			sc.Quit()
		}
	}()
	have := sel.NumMessages
	var lat, accept []time.Duration
	for i := range *count {
		if i%50 == 0 { // a fresh session now and then stays below per-session command limits
			if sc != nil {
				sc.Quit()
			}
			if sc, err = smtp.Dial(*smtpAddr); err != nil {
				return err
			}
			if err := sc.Hello("client.sender.test"); err != nil {
				return err
			}
		}
		t0, t250, err := sendOne(sc, *user, benchutil.Message(100000+i, 4096, *user))
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if err := waitExists(ctx, exists, &have); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		lat = append(lat, time.Since(t0))
		accept = append(accept, t250.Sub(t0))
		time.Sleep(*pause)
	}
	return benchutil.AppendResult(c.out, benchutil.Result{Workload: "notify", Server: c.server, Run: c.run, Metrics: map[string]float64{
		"p50_ms":          benchutil.Ms(benchutil.Percentile(lat, 50)),
		"p99_ms":          benchutil.Ms(benchutil.Percentile(lat, 99)),
		"max_ms":          benchutil.Ms(benchutil.Percentile(lat, 100)),
		"smtp_250_p50_ms": benchutil.Ms(benchutil.Percentile(accept, 50)),
		"messages":        float64(len(lat)),
	}})
}

// sendOne sends msg and returns when the final "." went out and when the 250 came back.
func sendOne(sc *smtp.Client, to string, msg []byte) (t0, t250 time.Time, err error) {
	if err = sc.Mail("bench@sender.test", nil); err != nil {
		return
	}
	if err = sc.Rcpt(to, nil); err != nil {
		return
	}
	w, err := sc.Data()
	if err != nil {
		return
	}
	if _, err = w.Write(msg); err != nil {
		return
	}
	t0 = time.Now() // the body is buffered; Close writes the rest and the "."
	err = w.Close()
	return t0, time.Now(), err
}

// waitExists waits for an EXISTS above *have.
func waitExists(ctx context.Context, exists <-chan uint32, have *uint32) error {
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case n := <-exists:
			if n > *have {
				*have = n
				return nil
			}
		case <-timeout:
			return fmt.Errorf("no EXISTS above %d within 2 minutes", *have)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
