package spamd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/engine/enginetest"
	"github.com/postern/postern/internal/mail"
)

const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// fakeSpamd answers SYMBOLS and PING like spamd: GTUBE scores 1000, anything else 1.5 (or 0 for "ham0").
type fakeSpamd struct {
	addr  string
	mu    sync.Mutex // guards users
	users []string
}

func startFake(t *testing.T) *fakeSpamd {
	t.Helper()
	f := &fakeSpamd{}
	f.addr = enginetest.Serve(t, "tcp", f.serve)
	return f
}

func (f *fakeSpamd) serve(c net.Conn) {
	br := bufio.NewReader(c)
	req, _ := br.ReadString('\n')
	clen, user := 0, ""
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		k, v, _ := strings.Cut(l, ": ")
		switch k {
		case "Content-length":
			clen, _ = strconv.Atoi(v)
		case "User":
			user = v
		}
	}
	f.mu.Lock()
	f.users = append(f.users, user)
	f.mu.Unlock()
	if strings.HasPrefix(req, "PING ") {
		io.WriteString(c, "SPAMD/1.5 0 PONG\r\n")
		return
	}
	body := make([]byte, clen)
	if _, err := io.ReadFull(br, body); err != nil {
		io.WriteString(c, "SPAMD/1.1 76 Bad header line\r\n")
		return
	}
	score, syms := "1.5", "MISSING_DATE,NO_RELAYS"
	switch {
	case strings.Contains(string(body), gtube):
		score, syms = "1000.0", "GTUBE,MISSING_DATE"
	case strings.Contains(string(body), "ham0"):
		score, syms = "0.0", ""
	}
	spam := "False"
	if score == "1000.0" {
		spam = "True"
	}
	fmt.Fprintf(c, "SPAMD/1.1 0 EX_OK\r\nContent-length: %d\r\nSpam: %s ; %s / 5.0\r\n\r\n%s", len(syms), spam, score, syms)
}

func message(body string) *filter.Message {
	return enginetest.Message("From: a@example.org\r\nTo: b@example.net\r\nSubject: test\r\n\r\n" + body)
}

func TestData(t *testing.T) {
	t.Parallel()
	f := startFake(t)
	c, err := New(Options{Address: strings.TrimPrefix(f.addr, "tcp:"), UserFromRecipient: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	rcpt, _ := mail.ParseAddress("bob@example.net")
	txn := &filter.Txn{Values: map[string]any{}, Recipients: []mail.Address{rcpt}}
	v := c.Data(ctx, txn, message(gtube+"\r\n"))
	if v.Action != filter.Tag || v.Score != 1000 || v.Symbol != "SPAMD" || !strings.Contains(v.Reason, "GTUBE") {
		t.Fatalf("GTUBE: %+v", v)
	}
	res, _ := txn.Values["spamd"].(Result)
	if !res.Spam || res.Threshold != 5 || len(res.Symbols) != 2 || res.Symbols[0] != "GTUBE" {
		t.Errorf("Values[spamd] = %+v", res)
	}
	if v := c.Data(ctx, txn, message("hello\r\n")); v.Action != filter.Tag || v.Score != 1.5 {
		t.Errorf("ordinary message: %+v", v)
	}
	if v := c.Data(ctx, txn, message("ham0\r\n")); v.Action != filter.Accept || v.Score != 0 {
		t.Errorf("zero score: %+v", v)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.users[1] != "bob@example.net" {
		t.Errorf("User headers sent: %q", f.users)
	}
}

func TestTooLargeNotSent(t *testing.T) {
	t.Parallel()
	f := startFake(t)
	c, err := New(Options{Address: f.addr, MaxSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Data(context.Background(), &filter.Txn{}, message(gtube)); v.Action != filter.Accept || v.Reason == "" {
		t.Errorf("over MaxSize: %+v", v)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.users) != 0 {
		t.Errorf("spamd was asked %d times", len(f.users))
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
	enginetest.TestFailures(t, func(addr, onError string) (filter.DataChecker, error) {
		return New(Options{Address: addr, OnError: onError})
	}, func() *filter.Txn { return &filter.Txn{} })
}

func TestParseResponse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want string // fmt of the Result, or "error"
	}{
		{"SPAMD/1.1 0 EX_OK\r\nContent-length: 5\r\nSpam: True ; 15.2 / 5.0\r\n\r\nA,B,C", "{true 15.2 5 [A B C]}"},
		{"SPAMD/1.1 0 EX_OK\r\nSpam: False ; -0.3 / 5.0\r\n\r\n", "{false -0.3 5 []}"},
		{"SPAMD/1.1 0 EX_OK\r\nSpam: Yes ; 6 / 5\r\n\r\n", "{true 6 5 []}"},
		{"SPAMD/1.0 76 Bad header line: (Content-Length contains non-numeric bytes)\r\n", "error"},
		{"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n", "error"},
		{"SPAMD/1.1 0 EX_OK\r\nSpam: True ; NaN / 5.0\r\n\r\n", "error"},
		{"HTTP/1.1 200 OK\r\n\r\n", "error"},
		{"", "error"},
	} {
		res, err := ParseResponse(strings.NewReader(tc.in))
		got := fmt.Sprint(res)
		if err != nil {
			got = "error"
		}
		if got != tc.want {
			t.Errorf("ParseResponse(%q) = %s (%v), want %s", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte("SPAMD/1.1 0 EX_OK\r\nContent-length: 5\r\nSpam: True ; 15.2 / 5.0\r\n\r\nA,B,C"))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := ParseResponse(strings.NewReader(string(b)))
		if err == nil && isBad(res.Score) {
			t.Errorf("bad score accepted: %v", res.Score)
		}
	})
}
