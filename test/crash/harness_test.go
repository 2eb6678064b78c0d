//go:build crash

// Package crash is `make crashtest`: the real postern binary takes mail from a load generator while it is
// SIGKILLed and restarted at random points; afterwards every message that got 250 must be in its mailboxes
// exactly once (remote ones delivered at least once) and `postern check --store` must find the store clean.
// See docs/durability.md for what that proves and the numbers of a run.
package crash

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// binary returns the postern binary: $POSTERN_BIN (make crashtest passes bin/postern), else one built now.
func binary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("POSTERN_BIN"); b != "" {
		abs, err := filepath.Abs(b)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	out := filepath.Join(t.TempDir(), "postern")
	build := exec.Command("go", "build", "-o", out, "../../cmd/postern")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build postern: %v", err)
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// server is one postern data directory and the process currently serving it.
type server struct {
	t                *testing.T
	bin, dir, config string
	smtp, imaps      int

	mu   sync.Mutex // guards cmd, done, log
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer // output of every run, kept for a failure report
	runs int
}

// newServer runs postern init and writes a config: MX and IMAPS on loopback, mail for remote.test handed to the
// sink through the transport map.
func newServer(t *testing.T, bin, sinkAddr string) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{t: t, bin: bin, dir: dir, config: filepath.Join(dir, "postern.toml"), smtp: freePort(t),
		imaps: freePort(t), log: &bytes.Buffer{}}
	s.cli("", "init", "--dir", dir, "--hostname", "mail.example.test", "--domain", "example.test")
	cfg := fmt.Sprintf(`hostname = "mail.example.test"
data_dir = "data"

[listen]
smtp = ["127.0.0.1:%d"]
submission = []
submissions = []
imap = []
imaps = ["127.0.0.1:%d"]
pop3 = []
pop3s = []
pop2 = []
http = []

[smtp]
max_connections_per_ip = 100
shutdown_grace = "2s"

[delivery]
max_message_size = "1MiB"
transport = { "remote.test" = %q }
`, s.smtp, s.imaps, sinkAddr)
	if err := os.WriteFile(s.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// cli runs a management command and returns its stdout; it fails the test on a non-zero exit.
func (s *server) cli(stdin string, args ...string) string {
	s.t.Helper()
	out, err := s.cliErr(stdin, args...)
	if err != nil {
		s.t.Fatalf("postern %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (s *server) cliErr(stdin string, args ...string) (string, error) {
	if args[0] != "init" {
		args = append([]string{"-c", s.config}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

// start launches postern serve and waits until its SMTP port accepts connections.
func (s *server) start() {
	s.t.Helper()
	s.mu.Lock()
	s.runs++
	fmt.Fprintf(s.log, "=== run %d\n", s.runs)
	cmd := exec.Command(s.bin, "-c", s.config, "serve")
	w := &lockedWriter{mu: &s.mu, w: s.log}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatal(err)
	}
	done := make(chan struct{})
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	go func() {
		cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr(s.smtp), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			s.t.Fatalf("postern serve exited at start:\n%s", s.output())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("postern did not listen on %d:\n%s", s.smtp, s.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (s *server) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	_ = cmd.Process.Kill()
	<-done
}

// stop sends SIGTERM and waits (a graceful stop; SIGKILL after a minute).
func (s *server) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(time.Minute):
		s.t.Errorf("postern did not stop on SIGTERM")
		s.kill()
	}
}

func (s *server) addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// sink is the remote MTA of remote.test: it answers 250 to everything and counts each Message-ID it received.
type sink struct {
	mu  sync.Mutex // guards got
	got map[string]int
	srv *smtp.Server
	ln  net.Listener
}

func newSink(t *testing.T) *sink {
	t.Helper()
	k := &sink{got: map[string]int{}}
	k.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{k: k}, nil }))
	k.srv.Domain = "mx.remote.test"
	k.srv.MaxMessageBytes = 1 << 20
	k.srv.ReadTimeout, k.srv.WriteTimeout = time.Minute, time.Minute
	k.srv.ErrorLog = log.New(io.Discard, "", 0) // connections cut by a SIGKILL are expected
	var err error
	if k.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go k.srv.Serve(k.ln)
	t.Cleanup(func() { k.srv.Close() })
	return k
}

func (k *sink) addr() string { return k.ln.Addr().String() }

func (k *sink) counts() map[string]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]int, len(k.got))
	for id, n := range k.got {
		out[id] = n
	}
	return out
}

type sinkSession struct{ k *sink }

func (*sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (*sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (*sinkSession) Reset()                               {}
func (*sinkSession) Logout() error                        { return nil }
func (s *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	id := messageID(b)
	s.k.mu.Lock()
	s.k.got[id]++
	s.k.mu.Unlock()
	return nil
}

// messageID returns the Message-ID header's value of a message (or its header block), "" without one.
func messageID(b []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		if name, value, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "Message-ID") {
			return strings.TrimSpace(value)
		}
	}
	return ""
}
