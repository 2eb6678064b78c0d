// Package clamav is the anti-virus check: it streams each message to ClamAV's clamd with the INSTREAM command and
// rejects infected mail at DATA with 554 5.7.1, the virus name in the log (and in the reply, as Postfix with
// amavisd-new does).
//
// Config keys (wired by internal/app): [antivirus] clamd → Options.Address ("tcp:127.0.0.1:3310" or
// "unix:/run/clamav/clamd.ctl"), [antivirus] on_error → Options.OnError ("tempfail" or "accept"), and optional
// [antivirus] clamd_timeout → Options.Timeout, clamd_max_size → Options.MaxSize.
//
// The protocol (clamd(8), "INSTREAM"): "zINSTREAM\0", then chunks each preceded by its length as a 4-byte
// big-endian integer, then a zero-length chunk; clamd answers one NUL-terminated line: "stream: OK",
// "stream: NAME FOUND" or "... ERROR". clamd refuses streams longer than its StreamMaxLength with "INSTREAM size
// limit exceeded. ERROR" (and may close the socket while we still write): that is an error, never "clean".
package clamav

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/engine"
)

// Options configure the check.
type Options struct {
	Address string // clamd's address; required
	OnError string // "tempfail" (default) or "accept" when clamd cannot answer
	// Timeout bounds one scan (default 60 s); the pipeline's check timeout bounds it too.
	Timeout time.Duration
	// ChunkSize is the INSTREAM chunk size (default 64 KiB).
	ChunkSize int
	// MaxSize: larger messages are not sent and pass unscanned, logged (0: every message is sent, and one over
	// clamd's StreamMaxLength is an error under OnError). Set it to StreamMaxLength (clamd's default is 25 MiB;
	// the config's clamd_max_size defaults to that) to scan what clamd can.
	MaxSize int64
	Logger  *slog.Logger
}

// Check scans messages with clamd. It is safe for concurrent use; each scan uses its own connection.
type Check struct {
	addr  engine.Addr
	cl    engine.Client
	chunk int
}

// New returns a Check for o.
func New(o Options) (*Check, error) {
	a, cl, err := engine.NewDialer("clamav", o.Address, engine.Config{OnError: o.OnError, Timeout: o.Timeout,
		MaxSize: o.MaxSize, Logger: o.Logger}, 0)
	if err != nil {
		return nil, err
	}
	c := &Check{addr: a, cl: cl, chunk: o.ChunkSize}
	if c.chunk <= 0 {
		c.chunk = 64 << 10
	}
	return c, nil
}

// Name implements filter.Check.
func (c *Check) Name() string { return "clamav" }

// Result is clamd's answer for one stream.
type Result struct {
	Infected bool
	Virus    string // signature name when Infected
}

// ErrSizeLimit is clamd's refusal of a stream longer than its StreamMaxLength.
var ErrSizeLimit = errors.New("clamd: INSTREAM size limit exceeded")

// Ping sends PING and expects PONG: a startup check that clamd is there.
func (c *Check) Ping(ctx context.Context) error {
	reply, err := c.command(ctx, "zPING\x00", nil)
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("clamd: PING answered %q", reply)
	}
	return nil
}

// Scan streams r to clamd and returns its verdict.
func (c *Check) Scan(ctx context.Context, r io.Reader) (Result, error) {
	reply, err := c.command(ctx, "zINSTREAM\x00", r)
	if err != nil {
		return Result{}, err
	}
	return ParseReply(reply)
}

// command sends cmd (and, when body is not nil, body as INSTREAM chunks) and returns the reply line.
func (c *Check) command(ctx context.Context, cmd string, body io.Reader) (string, error) {
	ctx, cancel := c.cl.WithTimeout(ctx)
	defer cancel()
	conn, err := engine.Dial(ctx, c.addr)
	if err != nil {
		return "", fmt.Errorf("clamd %s: %w", c.addr, err)
	}
	defer conn.Close()
	werr := c.send(conn, cmd, body)
	// Read the reply even when writing failed: clamd closes the socket after "size limit exceeded", and that
	// reply says more than the broken pipe.
	reply, rerr := bufio.NewReaderSize(io.LimitReader(conn, 4096), 1024).ReadString(0) // a reply is one short line
	reply = strings.TrimSpace(strings.TrimRight(reply, "\x00"))
	if rerr != nil && reply == "" {
		if werr != nil {
			return "", fmt.Errorf("clamd %s: %w", c.addr, werr)
		}
		return "", fmt.Errorf("clamd %s: read reply: %w", c.addr, rerr)
	}
	if strings.Contains(reply, "size limit exceeded") {
		return "", ErrSizeLimit
	}
	if werr != nil {
		return "", fmt.Errorf("clamd %s: %w (reply %q)", c.addr, werr, reply)
	}
	return reply, nil
}

// send writes the command and the stream: each chunk prefixed with its 4-byte big-endian length, then a zero
// length (clamd(8) INSTREAM).
func (c *Check) send(w io.Writer, cmd string, body io.Reader) error {
	bw := bufio.NewWriterSize(w, c.chunk+4)
	if _, err := bw.WriteString(cmd); err != nil {
		return err
	}
	if body != nil {
		buf := make([]byte, c.chunk)
		var lenb [4]byte
		for {
			n, err := io.ReadFull(body, buf)
			if n > 0 {
				binary.BigEndian.PutUint32(lenb[:], uint32(n))
				if _, werr := bw.Write(lenb[:]); werr != nil {
					return werr
				}
				if _, werr := bw.Write(buf[:n]); werr != nil {
					return werr
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				return fmt.Errorf("read message: %w", err)
			}
		}
		if _, err := bw.Write([]byte{0, 0, 0, 0}); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ParseReply interprets clamd's answer to INSTREAM: "stream: OK", "stream: NAME FOUND", "... ERROR".
func ParseReply(reply string) (Result, error) {
	reply = strings.TrimSpace(strings.TrimRight(reply, "\x00"))
	// The answer names the scanned object first ("stream: ..."; older clamd and some proxies add a session id
	// like "1: stream: ..."): what matters is after the last ": ".
	i := strings.LastIndex(reply, ": ")
	status := reply
	if i >= 0 {
		status = reply[i+2:]
	}
	switch {
	case strings.HasSuffix(reply, " ERROR"):
		if strings.Contains(reply, "size limit exceeded") {
			return Result{}, ErrSizeLimit
		}
		return Result{}, fmt.Errorf("clamd: %s", reply)
	case status == "OK":
		return Result{}, nil
	case strings.HasSuffix(status, " FOUND"):
		name := strings.TrimSpace(strings.TrimSuffix(status, " FOUND"))
		if name == "" {
			name = "unknown"
		}
		return Result{Infected: true, Virus: name}, nil
	}
	return Result{}, fmt.Errorf("clamd: unexpected reply %q", reply)
}

// Data implements filter.DataChecker.
func (c *Check) Data(ctx context.Context, t *filter.Txn, m *filter.Message) filter.Verdict {
	if v, over := c.cl.TooLarge(t.QueueID, m.Size); over {
		return v // clamd would refuse it (StreamMaxLength): see Options.MaxSize
	}
	r, err := m.Open()
	if err != nil {
		return c.cl.Fail(fmt.Errorf("open message: %w", err))
	}
	defer r.Close()
	res, err := c.Scan(ctx, r)
	if err != nil {
		return c.cl.Fail(err)
	}
	if !res.Infected {
		c.cl.Log.Debug("clamd: clean", "queue_id", t.QueueID)
		return filter.Verdict{}
	}
	c.cl.Log.Info("clamd: virus found", "queue_id", t.QueueID, "virus", res.Virus)
	return filter.Verdict{Action: filter.Reject, Code: 554, Enhanced: "5.7.1",
		Message: "Message rejected: virus found (" + sanitize(res.Virus) + ")",
		Reason:  "virus found: " + res.Virus}
}

// sanitize keeps a signature name safe for an SMTP reply line: printable ASCII only, bounded length.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r > ' ' && r < 0x7f && b.Len() < 100 {
			b.WriteRune(r)
		}
	}
	return b.String()
}
