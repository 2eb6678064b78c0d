// Package spamd is the check that asks SpamAssassin's spamd for a score over the SPAMC/1.5 protocol (spamd(1p),
// "The SPAMC/SPAMD protocol"), the way spamc does. The score is contributed to the transaction as a Tag verdict
// with Symbol "SPAMD"; the pipeline's junk_score and reject_score thresholds decide what happens to the message.
// The rule names spamd reports are logged and kept in Txn.Values["spamd"] (type Result) for later checks.
//
// Config keys (wired by internal/app): [antispam] spamd → Options.Address ("host:port", "tcp:host:port" or
// "unix:/path"), [antispam] on_error → Options.OnError, and optional [antispam] spamd_timeout → Options.Timeout,
// spamd_max_size → Options.MaxSize, spamd_user → Options.User.
package spamd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/engine"
)

// Options configure the check.
type Options struct {
	Address string // spamd's address; required
	OnError string // "tempfail" (default) or "accept" when spamd cannot answer
	// Timeout bounds one request (default 60 s).
	Timeout time.Duration
	// MaxSize: larger messages are not sent and pass unscored, as spamc does (default 1 MiB; spamc's is 500 KB;
	// negative: no limit).
	MaxSize int64
	// User is the User: header (the SpamAssassin preferences to use); "" sends none. When the transaction has
	// exactly one recipient and UserFromRecipient is set, that address is sent instead.
	User              string
	UserFromRecipient bool
	Logger            *slog.Logger
}

// Check asks spamd. It is safe for concurrent use.
type Check struct {
	o    Options
	addr engine.Addr
	cl   engine.Client
}

// New returns a Check for o.
func New(o Options) (*Check, error) {
	a, cl, err := engine.NewDialer("spamd", o.Address, engine.Config{OnError: o.OnError, Timeout: o.Timeout,
		MaxSize: o.MaxSize, Logger: o.Logger}, 1<<20)
	if err != nil {
		return nil, err
	}
	return &Check{o: o, addr: a, cl: cl}, nil
}

// Name implements filter.Check.
func (c *Check) Name() string { return "spamd" }

// Result is spamd's answer.
type Result struct {
	Spam      bool
	Score     float64
	Threshold float64
	Symbols   []string
}

// Ping sends PING and expects "SPAMD/1.x 0 PONG".
func (c *Check) Ping(ctx context.Context) error {
	ctx, cancel := c.cl.WithTimeout(ctx)
	defer cancel()
	conn, err := engine.Dial(ctx, c.addr)
	if err != nil {
		return fmt.Errorf("spamd %s: %w", c.addr, err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "PING SPAMC/1.5\r\n\r\n"); err != nil {
		return fmt.Errorf("spamd %s: %w", c.addr, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("spamd %s: %w", c.addr, err)
	}
	if f := strings.Fields(line); len(f) < 3 || f[1] != "0" || f[2] != "PONG" {
		return fmt.Errorf("spamd %s: PING answered %q", c.addr, strings.TrimSpace(line))
	}
	return nil
}

// Symbols sends msg with the SYMBOLS command for user ("" for none) and returns spamd's verdict.
func (c *Check) Symbols(ctx context.Context, user string, msg []byte) (Result, error) {
	ctx, cancel := c.cl.WithTimeout(ctx)
	defer cancel()
	conn, err := engine.Dial(ctx, c.addr)
	if err != nil {
		return Result{}, fmt.Errorf("spamd %s: %w", c.addr, err)
	}
	defer conn.Close()
	var req bytes.Buffer
	fmt.Fprintf(&req, "SYMBOLS SPAMC/1.5\r\nContent-length: %d\r\n", len(msg))
	if user = engine.HeaderSafe(user); user != "" {
		fmt.Fprintf(&req, "User: %s\r\n", user)
	}
	req.WriteString("\r\n")
	req.Write(msg)
	if _, err := conn.Write(req.Bytes()); err != nil {
		return Result{}, fmt.Errorf("spamd %s: send: %w", c.addr, err)
	}
	// 64 KiB of answer is far more than any symbol list; a bigger one is a confused peer.
	res, err := ParseResponse(io.LimitReader(conn, 64<<10))
	if err != nil {
		return Result{}, fmt.Errorf("spamd %s: %w", c.addr, err)
	}
	return res, nil
}

// ParseResponse reads a SPAMD/1.x response to SYMBOLS, CHECK or REPORT: the status line, the headers (Spam:
// "True ; 15.2 / 5.0", Content-length) and, for SYMBOLS, the comma-separated rule names in the body.
func ParseResponse(r io.Reader) (Result, error) {
	br := bufio.NewReader(r)
	status, err := br.ReadString('\n')
	if err != nil {
		return Result{}, fmt.Errorf("read status: %w", err)
	}
	f := strings.Fields(status)
	if len(f) < 3 || !strings.HasPrefix(f[0], "SPAMD/") {
		return Result{}, fmt.Errorf("bad status line %q", strings.TrimSpace(status))
	}
	if f[1] != "0" {
		return Result{}, fmt.Errorf("spamd error %s: %s", f[1], strings.Join(f[2:], " "))
	}
	var res Result
	gotSpam, clen := false, -1
	for {
		line, err := br.ReadString('\n')
		if err != nil && line == "" {
			return Result{}, fmt.Errorf("read headers: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return Result{}, fmt.Errorf("bad header %q", line)
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "spam":
			if res, err = parseSpamHeader(value); err != nil {
				return Result{}, err
			}
			gotSpam = true
		case "content-length":
			if clen, err = strconv.Atoi(value); err != nil || clen < 0 {
				return Result{}, fmt.Errorf("bad Content-length %q", value)
			}
		}
		if err != nil {
			break
		}
	}
	if !gotSpam {
		return Result{}, fmt.Errorf("no Spam header in the response")
	}
	var body []byte
	if clen >= 0 {
		body = make([]byte, clen)
		n, err := io.ReadFull(br, body)
		body = body[:n]
		if err != nil && n == 0 && clen > 0 {
			return Result{}, fmt.Errorf("read body: %w", err)
		}
	} else {
		body, _ = io.ReadAll(br)
	}
	for _, s := range strings.Split(strings.TrimSpace(string(body)), ",") {
		if s = strings.TrimSpace(s); s != "" && !strings.ContainsAny(s, " \t\n") {
			res.Symbols = append(res.Symbols, s)
		}
	}
	return res, nil
}

// parseSpamHeader parses "True ; 15.2 / 5.0" (also "Yes"/"No", as older spamd sends).
func parseSpamHeader(v string) (Result, error) {
	verdict, scores, ok := strings.Cut(v, ";")
	score, threshold, ok2 := strings.Cut(scores, "/")
	if !ok || !ok2 {
		return Result{}, fmt.Errorf("bad Spam header %q", v)
	}
	var res Result
	switch strings.ToLower(strings.TrimSpace(verdict)) {
	case "true", "yes":
		res.Spam = true
	case "false", "no":
	default:
		return Result{}, fmt.Errorf("bad Spam header %q", v)
	}
	var err1, err2 error
	res.Score, err1 = strconv.ParseFloat(strings.TrimSpace(score), 64)
	res.Threshold, err2 = strconv.ParseFloat(strings.TrimSpace(threshold), 64)
	if err1 != nil || err2 != nil || isBad(res.Score) || isBad(res.Threshold) {
		return Result{}, fmt.Errorf("bad Spam header %q", v)
	}
	return res, nil
}

// isBad rejects NaN and infinities, which would poison the transaction's score sum.
func isBad(f float64) bool { return f != f || f > 1e9 || f < -1e9 }

// Data implements filter.DataChecker.
func (c *Check) Data(ctx context.Context, t *filter.Txn, m *filter.Message) filter.Verdict {
	msg, v, ok := c.cl.ReadMessage(t.QueueID, m)
	if !ok {
		return v
	}
	user := c.o.User
	if c.o.UserFromRecipient && len(t.Recipients) == 1 {
		user = t.Recipients[0].String()
	}
	res, err := c.Symbols(ctx, user, msg)
	if err != nil {
		return c.cl.Fail(err)
	}
	if t.Values != nil {
		t.Values[c.Name()] = res
	}
	reason := fmt.Sprintf("spamd: spam=%t score=%.1f/%.1f symbols=%s", res.Spam, res.Score, res.Threshold,
		strings.Join(res.Symbols, ","))
	c.cl.Log.Info("spamd answered", "queue_id", t.QueueID, "spam", res.Spam, "score", res.Score,
		"threshold", res.Threshold, "symbols", strings.Join(res.Symbols, ","))
	if res.Score == 0 {
		return filter.Verdict{Reason: reason}
	}
	return filter.Verdict{Action: filter.Tag, Score: res.Score, Symbol: "SPAMD", Reason: reason}
}
