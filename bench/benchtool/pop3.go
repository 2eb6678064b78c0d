package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/postern/postern/bench/internal/benchutil"
)

// cmdPOP3 logs in with USER/PASS and RETRs every message of the maildrop in order, one command at a time (RFC
// 1939 5), several passes, each its own session (one pass lasts well under a second), each QUITting without DELE so the
// next finds the same maildrop.
func cmdPOP3(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pop3", flag.ExitOnError)
	var c common
	c.register(fs)
	addr := fs.String("addr", "127.0.0.1:110", "POP3 server")
	user := fs.String("user", "", "user")
	pass := fs.String("pass", "", "password")
	count := fs.Int("count", 1000, "messages expected in the maildrop")
	passes := fs.Int("passes", 5, "RETR passes over the maildrop in the session; the median pass is reported")
	fs.Parse(args)
	var times []time.Duration
	var bytes int64
	var login time.Duration
	for range *passes {
		t, b, l, err := popPass(ctx, *addr, *user, *pass, *count)
		if err != nil {
			return err
		}
		times, bytes, login = append(times, t), b, l
	}
	first := times[0]
	elapsed := benchutil.Percentile(times, 50)
	return benchutil.AppendResult(c.out, benchutil.Result{Workload: "pop3", Server: c.server, Run: c.run, Metrics: map[string]float64{
		"retr_msgs_per_s": float64(*count) / elapsed.Seconds(),
		"retr_mb_per_s":   float64(bytes) / 1e6 / elapsed.Seconds(),
		"retr_all_s":      elapsed.Seconds(),
		"first_pass_s":    first.Seconds(),
		"login_ms":        benchutil.Ms(login),
	}})
}

// popPass is one session: log in, check the maildrop, RETR messages 1..count, QUIT. It returns the RETR time,
// the bytes received and the login time.
func popPass(ctx context.Context, addr, user, pass string, count int) (time.Duration, int64, time.Duration, error) {
	conn, err := (&net.Dialer{Timeout: 30 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, 0, 0, err
	}
	defer conn.Close()
	p := &popConn{r: bufio.NewReaderSize(conn, 64<<10), w: bufio.NewWriter(conn)}
	if _, err := p.status(); err != nil {
		return 0, 0, 0, fmt.Errorf("greeting: %w", err)
	}
	start := time.Now()
	if _, err := p.cmd("USER " + user); err != nil {
		return 0, 0, 0, err
	}
	if _, err := p.cmd("PASS " + pass); err != nil {
		return 0, 0, 0, err
	}
	login := time.Since(start)
	stat, err := p.cmd("STAT")
	if err != nil {
		return 0, 0, 0, err
	}
	var n, octets int
	if _, err := fmt.Sscanf(stat, "%d %d", &n, &octets); err != nil || n < count {
		return 0, 0, 0, fmt.Errorf("STAT %q: want at least %d messages", stat, count)
	}
	t, bytes, err := p.retrAll(count)
	if err != nil {
		return 0, 0, 0, err
	}
	if _, err := p.cmd("QUIT"); err != nil {
		return 0, 0, 0, err
	}
	return t, bytes, login, nil
}

// retrAll RETRs messages 1..count and returns how long that took and the bytes received.
func (p *popConn) retrAll(count int) (time.Duration, int64, error) {
	start := time.Now()
	var bytes int64
	for i := 1; i <= count; i++ {
		if _, err := p.cmd(fmt.Sprintf("RETR %d", i)); err != nil {
			return 0, 0, err
		}
		m, err := p.multiline()
		if err != nil {
			return 0, 0, fmt.Errorf("RETR %d: %w", i, err)
		}
		bytes += m
	}
	return time.Since(start), bytes, nil
}

// popConn is the little of a POP3 client the benchmark needs.
type popConn struct {
	r *bufio.Reader
	w *bufio.Writer
}

func (p *popConn) cmd(line string) (string, error) {
	if _, err := p.w.WriteString(line + "\r\n"); err != nil {
		return "", err
	}
	if err := p.w.Flush(); err != nil {
		return "", err
	}
	verb, _, _ := strings.Cut(line, " ")
	s, err := p.status()
	if err != nil {
		return "", fmt.Errorf("%s: %w", verb, err)
	}
	return s, nil
}

// status reads a status line: the text after +OK, or an error for -ERR.
func (p *popConn) status() (string, error) {
	line, err := p.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if rest, ok := strings.CutPrefix(line, "+OK"); ok {
		return strings.TrimSpace(rest), nil
	}
	return "", fmt.Errorf("server: %q", line)
}

// multiline reads a multi-line response up to the terminating "." line and returns the bytes read.
func (p *popConn) multiline() (int64, error) {
	var n int64
	partial := false // the previous read ended inside a long line
	for {
		line, err := p.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			n += int64(len(line))
			partial = true
			continue
		}
		if err == io.EOF {
			return n, io.ErrUnexpectedEOF
		}
		if err != nil {
			return n, err
		}
		if !partial && len(line) <= 3 && line[0] == '.' && (len(line) == 2 || line[1] == '\r') {
			return n, nil
		}
		n += int64(len(line))
		partial = false
	}
}
