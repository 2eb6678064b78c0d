package pop3server

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestParseCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		verb string
		args []string
		rest string
		err  error
	}{
		{"STAT", "STAT", nil, "", nil},
		{"list 1", "LIST", []string{"1"}, "1", nil},
		{"TOP 1  0 ", "TOP", []string{"1", "0"}, "1  0 ", nil},
		{"PASS  my secret ", "PASS", []string{"my", "secret"}, " my secret ", nil},
		{"X-EXT-1 a", "X-EXT-1", []string{"a"}, "a", nil},
		{"USER jöhn@exämple.org", "USER", []string{"jöhn@exämple.org"}, "jöhn@exämple.org", nil},
		{"", "", nil, "", errEmpty},
		{" STAT", "", nil, "", errBadKeyword},
		{"ST.T", "", nil, "", errBadKeyword},
		{strings.Repeat("A", 41), "", nil, "", errBadKeyword},
		{"PASS a\x00b", "", nil, "", errBadChar},
		{"PASS a\tb", "", nil, "", errBadChar},
		{"NOOP\x7f", "", nil, "", errBadChar},
	} {
		cmd, err := parseCommand(tc.line)
		if err != tc.err || cmd.verb != tc.verb || cmd.rest != tc.rest || strings.Join(cmd.args, "|") != strings.Join(tc.args, "|") {
			t.Errorf("parseCommand(%q) = %+v, %v; want %s %q %q, %v", tc.line, cmd, err, tc.verb, tc.args, tc.rest, tc.err)
		}
	}
	for s, want := range map[string]int{"0": 0, "1": 1, "007": 7, "999999999": 999999999, "4294967295": 1<<31 - 1,
		"999999999999999999": 1<<31 - 1} {
		if n, ok := parseNumber(s); !ok || n != want {
			t.Errorf("parseNumber(%q) = %d, %v", s, n, ok)
		}
	}
	for _, s := range []string{"", "-1", "+1", "1x", "1000000000000000000", " 1"} {
		if _, ok := parseNumber(s); ok {
			t.Errorf("parseNumber(%q) accepted", s)
		}
	}
}

// FuzzParseCommand: the parser never panics, and what it accepts is well formed.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"STAT", "LIST 1", "TOP 1 10", "PASS a b c", "AUTH PLAIN =", "UIDL", "uidl 3", "",
		"RETR 99999999999", "USER \xff\xfe", "CAPA\x00", strings.Repeat("x ", 130)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, err := parseCommand(line)
		if err != nil {
			return
		}
		if cmd.verb == "" || len(cmd.verb) > maxKeyword || strings.ToUpper(cmd.verb) != cmd.verb {
			t.Errorf("verb %q", cmd.verb)
		}
		for _, a := range cmd.args {
			if a == "" || strings.ContainsAny(a, " \x00\r\n") {
				t.Errorf("argument %q", a)
			}
		}
		if !strings.HasSuffix(line, cmd.rest) {
			t.Errorf("rest %q is not the tail of %q", cmd.rest, line)
		}
		for _, a := range cmd.args {
			if n, ok := parseNumber(a); ok && n < 0 {
				t.Errorf("parseNumber(%q) = %d", a, n)
			}
		}
	})
}

// normalize is what a client must receive for a stored message: lines ended by CRLF (bare LF becomes CRLF) and
// a final line end added when missing.
func normalize(in []byte) []byte {
	if len(in) == 0 {
		return nil
	}
	parts := bytes.Split(in, []byte("\n"))
	var out []byte
	for i, p := range parts {
		last := i == len(parts)-1
		if last && len(p) == 0 {
			break
		}
		if !last {
			p = bytes.TrimSuffix(p, []byte("\r"))
		}
		out = append(append(out, p...), '\r', '\n')
	}
	return out
}

// unstuff removes the dot-stuffing of a multi-line body and checks its lines.
func unstuff(t *testing.T, wire []byte) []byte {
	t.Helper()
	if len(wire) > 0 && !bytes.HasSuffix(wire, []byte("\r\n")) {
		t.Fatalf("output %q does not end in CRLF", wire)
	}
	var out []byte
	for _, l := range bytes.SplitAfter(wire, []byte("\r\n")) {
		if len(l) == 0 {
			continue
		}
		if bytes.Equal(l, []byte(".\r\n")) {
			t.Fatalf("output contains the termination line: %q", wire)
		}
		if bytes.IndexByte(l[:len(l)-2], '\n') >= 0 {
			t.Fatalf("bare LF in output line %q", l)
		}
		out = append(out, bytes.TrimPrefix(l, []byte("."))...)
	}
	return out
}

func stuff(t *testing.T, r io.Reader, lines int) ([]byte, int64) {
	t.Helper()
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	n, err := copyMessage(bw, r, lines)
	if err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	return buf.Bytes(), n
}

// FuzzStuffer: RETR's output is the normalized message, dot-stuffed, whatever the input and however it is
// chunked; the count returned is what the client keeps. TOP's output is a prefix of RETR's.
func FuzzStuffer(f *testing.F) {
	for _, s := range []string{msg1, msg2, "", ".", "..\r\n", "a\nb\n.\n", "x\r", "x\r\r\n.\r", "\r\n\r\n.\r\n",
		"H: v\r\n\r\n" + strings.Repeat("y", 40000) + "\r\n"} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, lines uint8) {
		whole, n := stuff(t, bytes.NewReader(in), -1)
		got := unstuff(t, whole)
		if want := normalize(in); !bytes.Equal(got, want) {
			t.Fatalf("RETR of %q: un-stuffed %q, want %q", in, got, want)
		}
		if n != int64(len(got)) {
			t.Fatalf("count %d, client keeps %d", n, len(got))
		}
		if bytes.Equal(in, normalize(in)) && n != int64(len(in)) {
			t.Fatalf("CRLF message of %d octets counted %d", len(in), n)
		}
		oneByte, _ := stuff(t, iotest.OneByteReader(bytes.NewReader(in)), -1)
		if !bytes.Equal(oneByte, whole) {
			t.Fatalf("chunking changed the output: %q vs %q", oneByte, whole)
		}
		top, _ := stuff(t, bytes.NewReader(in), int(lines))
		if !bytes.HasPrefix(whole, top) {
			t.Fatalf("TOP %d output %q is not a prefix of RETR's %q", lines, top, whole)
		}
		unstuff(t, top)
	})
}

// FuzzSession drives whole sessions with arbitrary input: no panic, no hang, the lock is always released.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"USER alice@example.org\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 1\r\nDELE 1\r\nRSET\r\nDELE 2\r\nQUIT\r\n",
		"AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==\r\nLIST 1\r\nRETR 3\r\nQUIT\r\n",
		"AUTH LOGIN\r\nYWxpY2VAZXhhbXBsZS5vcmc=\r\nc2VjcmV0\r\nNOOP\r\n",
		"CAPA\r\nSTLS\r\nAUTH\r\nAUTH PLAIN\r\n*\r\nAPOP x y\r\nPASS x\r\n",
		"USER alice@example.org\r\nPASS secret\r\nDELE 1\r\nDELE 1\r\nTOP 1 x\r\nRETR 0\r\n",
		"USER a\r\nPASS b\r\nUSER a\r\nPASS b\r\nUSER a\r\nPASS b\r\nUSER a\r\n",
	} {
		f.Add([]byte(s))
	}
	fx := newFixture(f, func(o *Options) { o.AllowPlaintextAuth = true; o.Timeout = 2 * time.Second; o.MaxConnsPerIP = 1000 })
	fx.store.Deliver(alice, msg1)
	fx.store.Deliver(alice, msg2)
	fx.store.Deliver(alice, "Subject: lf\n\n.bare\n")
	f.Fuzz(func(t *testing.T, in []byte) {
		server, client := net.Pipe()
		fx.srv.conns.Handle(server)
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(3 * time.Second))
		client.Write(in)
		client.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fx.srv.Shutdown(ctx); err != nil {
		f.Fatalf("sessions did not end: %v", err)
	}
	mb, _ := fx.store.GetMailbox(ctx, alice, "INBOX")
	if _, ok := fx.srv.opts.Locks.TryLock(mb.ID); !ok {
		f.Fatal("a session kept the maildrop lock")
	}
}
