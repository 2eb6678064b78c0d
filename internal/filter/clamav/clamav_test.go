package clamav

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/engine/enginetest"
)

// eicar is the EICAR anti-virus test file, split so this source file is not itself flagged.
const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// fakeClamd speaks clamd's z-commands: INSTREAM reports Eicar-Signature when the stream holds the EICAR string,
// and refuses streams over maxLen the way clamd does.
type fakeClamd struct {
	addr   string
	maxLen int
	mu     sync.Mutex // guards got
	got    [][]byte   // each stream received
}

func startFake(t *testing.T, network string, maxLen int) *fakeClamd {
	t.Helper()
	f := &fakeClamd{maxLen: maxLen}
	f.addr = enginetest.Serve(t, network, f.serve)
	return f
}

func (f *fakeClamd) serve(c net.Conn) {
	br := bufio.NewReader(c)
	cmd, err := br.ReadString(0)
	if err != nil {
		return
	}
	switch cmd {
	case "zPING\x00":
		io.WriteString(c, "PONG\x00")
	case "zINSTREAM\x00":
		var data []byte
		for {
			var lb [4]byte
			if _, err := io.ReadFull(br, lb[:]); err != nil {
				return
			}
			n := binary.BigEndian.Uint32(lb[:])
			if n == 0 {
				break
			}
			if f.maxLen > 0 && len(data)+int(n) > f.maxLen {
				io.WriteString(c, "INSTREAM size limit exceeded. ERROR\x00")
				return
			}
			chunk := make([]byte, n)
			if _, err := io.ReadFull(br, chunk); err != nil {
				return
			}
			data = append(data, chunk...)
		}
		f.mu.Lock()
		f.got = append(f.got, data)
		f.mu.Unlock()
		if bytes.Contains(data, []byte(eicar)) {
			io.WriteString(c, "stream: Eicar-Signature FOUND\x00")
		} else {
			io.WriteString(c, "stream: OK\x00")
		}
	default:
		io.WriteString(c, "UNKNOWN COMMAND\x00")
	}
}

func message(body string) *filter.Message {
	return enginetest.Message("From: a@example.org\r\nTo: b@example.net\r\nSubject: test\r\n\r\n" + body)
}

func TestScan(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			f := startFake(t, network, 0)
			c, err := New(Options{Address: f.addr, ChunkSize: 7})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			txn := &filter.Txn{QueueID: "Q1"}
			if v := c.Data(ctx, txn, message("hello\r\n")); v.Action != filter.Accept {
				t.Errorf("clean message: %+v", v)
			}
			v := c.Data(ctx, txn, message(eicar+"\r\n"))
			if v.Action != filter.Reject || v.Code != 554 || v.Enhanced != "5.7.1" {
				t.Fatalf("EICAR: %+v", v)
			}
			if v.Reason != "virus found: Eicar-Signature" || !strings.Contains(v.Message, "Eicar-Signature") {
				t.Errorf("EICAR verdict text: %+v", v)
			}
			// The whole message went over, chunked: the fake reassembled it byte for byte.
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.got) != 2 || !bytes.HasSuffix(f.got[0], []byte("\r\n\r\nhello\r\n")) {
				t.Errorf("streams received: %q", f.got)
			}
		})
	}
}

func TestSizeLimitIsAnError(t *testing.T) {
	t.Parallel()
	f := startFake(t, "tcp", 100)
	c, err := New(Options{Address: f.addr, ChunkSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Scan(context.Background(), strings.NewReader(strings.Repeat("x", 10000)))
	if !errors.Is(err, ErrSizeLimit) {
		t.Fatalf("Scan of a long stream: err = %v, want ErrSizeLimit", err)
	}
	if v := c.Data(context.Background(), &filter.Txn{}, message(strings.Repeat("y", 1000))); v.Action != filter.Tempfail {
		t.Errorf("over the limit with on_error=tempfail: %+v", v)
	}
	// With MaxSize at clamd's limit, a larger message is not sent: it passes unscanned, with a reason for the log.
	c, err = New(Options{Address: f.addr, MaxSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Data(context.Background(), &filter.Txn{}, message(strings.Repeat("y", 1000))); v.Action != filter.Accept || v.Reason == "" {
		t.Errorf("over MaxSize: %+v", v)
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
	enginetest.TestFailures(t, func(addr, onError string) (filter.DataChecker, error) {
		return New(Options{Address: "tcp:" + addr, OnError: onError})
	}, func() *filter.Txn { return &filter.Txn{} })
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{{}, {Address: "tcp:nohostport"}, {Address: "unix:"}, {Address: "tcp:127.0.0.1:3310", OnError: "drop"}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v): no error", o)
		}
	}
}

func TestParseReply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    Result
		wantErr bool
	}{
		{"stream: OK", Result{}, false},
		{"stream: OK\x00", Result{}, false},
		{"stream: Eicar-Signature FOUND", Result{true, "Eicar-Signature"}, false},
		{"1: stream: Win.Test.EICAR_HDB-1 FOUND\n", Result{true, "Win.Test.EICAR_HDB-1"}, false},
		{"INSTREAM size limit exceeded. ERROR", Result{}, true},
		{"stream: Can't allocate memory ERROR", Result{}, true},
		{"", Result{}, true},
		{"UNKNOWN COMMAND", Result{}, true},
	} {
		got, err := ParseReply(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseReply(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func FuzzParseReply(f *testing.F) {
	f.Add("stream: OK")
	f.Add("stream: Eicar-Signature FOUND")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReply(s)
		if err == nil && r.Infected && r.Virus == "" {
			t.Errorf("infected without a name: %q", s)
		}
		_ = sanitize(r.Virus)
	})
}
