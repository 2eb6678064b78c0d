//go:build integration

// Package integration starts the real postern binary and drives it over TCP with real clients
// (swaks, Python's smtplib, openssl, Go's net/smtp) — the black-box proof of DESIGN.md and the issues.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the postern binary built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "postern-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "postern")
	build := exec.Command("go", "build", "-o", binary, "../../cmd/postern")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build postern:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needTool skips when a tool is missing on a developer machine and fails when CI=true.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI but not installed", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// ports of one server instance.
type ports struct {
	SMTP, Submission, Submissions, IMAP, IMAPS, POP3, POP3S, HTTP, POP2 int
}

// server is one running postern with its own data directory.
type server struct {
	t       *testing.T
	dir     string
	config  string
	ports   ports
	cmd     *exec.Cmd
	stderr  *syncBuffer
	done    chan struct{}
	exitErr error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if reservePort(port) {
			return port
		}
	}
}

// handedOut holds every port freePort and freeUDPPort returned in this test process: a port is free when it is
// picked but only taken when its server starts, so without this a later pick could hand the same number to
// another server (dnsmasq, which binds UDP and TCP, failed with "Address already in use" that way).
var handedOut sync.Map

func reservePort(port int) bool {
	_, taken := handedOut.LoadOrStore(port, true)
	return !taken
}

// serverOptions adjust the generated config.
type serverOptions struct {
	allowPlaintext bool
	domain         string
	extra          string // appended TOML (whole tables)
	imap           bool   // listen on IMAP (STARTTLS) and IMAPS too: ports.IMAP, ports.IMAPS
	pop            bool   // listen on POP3 (STLS), POP3S and POP2 too: ports.POP3, ports.POP3S, ports.POP2
	smtpExtra      string // lines inside [smtp]
	deliveryExtra  string // lines inside [delivery]
}

// newServer runs `postern init` in a temp dir, writes a config with free loopback ports and starts `serve`.
func newServer(t *testing.T, o serverOptions) *server {
	t.Helper()
	if o.domain == "" {
		o.domain = "example.test"
	}
	dir := t.TempDir()
	s := &server{t: t, dir: dir, config: filepath.Join(dir, "postern.toml")}
	s.run("init", "--dir", dir, "--hostname", "mail."+o.domain, "--domain", o.domain)
	s.ports = ports{freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)}
	listen := func(on bool, port int) string {
		if !on {
			return "[]"
		}
		return fmt.Sprintf(`["127.0.0.1:%d"]`, port)
	}
	if !strings.Contains(o.extra, "[dns]") {
		// Hermetic DNS: the inbound checks (SPF, DKIM, DMARC) and the queue ask a loopback port nobody answers,
		// so they fail at once instead of reaching the machine's resolver. Tests that need answers run dnsmasq.
		o.extra += fmt.Sprintf("\n[dns]\nresolver = \"127.0.0.1:%d\"\n", freePort(t))
	}
	cfg := fmt.Sprintf(`hostname = "mail.%s"
data_dir = "data"

[listen]
smtp = ["127.0.0.1:%d"]
submission = ["127.0.0.1:%d"]
submissions = ["127.0.0.1:%d"]
imap = %s
imaps = %s
pop3 = %s
pop3s = %s
pop2 = %s
http = []

[auth]
allow_plaintext = %v
lockout_failures = 5
failure_delay = "10ms" # the growing delay after failures is for attackers, not for the test suite's wall clock

[smtp]
%s

[delivery]
max_message_size = "1MiB"
%s

%s
`, o.domain, s.ports.SMTP, s.ports.Submission, s.ports.Submissions,
		listen(o.imap, s.ports.IMAP), listen(o.imap, s.ports.IMAPS),
		listen(o.pop, s.ports.POP3), listen(o.pop, s.ports.POP3S), listen(o.pop, s.ports.POP2), o.allowPlaintext, o.smtpExtra, o.deliveryExtra, o.extra)
	if err := os.WriteFile(s.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start launches `postern serve` and waits until the SMTP port answers.
func (s *server) start() {
	s.t.Helper()
	s.stderr = &syncBuffer{}
	s.cmd = exec.Command(binary, "-c", s.config, "serve")
	s.cmd.Stderr = s.stderr
	s.cmd.Stdout = s.stderr
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func() {
		s.exitErr = s.cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr(s.ports.SMTP), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-s.done:
			s.t.Fatalf("postern serve exited early: %v\n%s", s.exitErr, s.stderr)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("postern did not listen on %d:\n%s", s.ports.SMTP, s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits; it is safe to call twice.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("postern did not stop on SIGTERM:\n%s", s.stderr)
	}
	if s.t.Failed() {
		s.t.Logf("server log:\n%s", s.stderr)
	}
}

// kill sends SIGKILL and waits.
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

func (s *server) addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// run runs a postern management command against this server's config and returns its stdout.
func (s *server) run(args ...string) string {
	s.t.Helper()
	out, err := s.runErr("", args...)
	if err != nil {
		s.t.Fatalf("postern %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// runErr runs a management command with stdin and returns combined output and the error.
func (s *server) runErr(stdin string, args ...string) (string, error) {
	full := args
	if s.config != "" && args[0] != "init" {
		full = append([]string{"-c", s.config}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, full...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// addUser creates a user with the given password.
func (s *server) addUser(address, password string) {
	s.t.Helper()
	if out, err := s.runErr(password+"\n", "user", "add", address, "--password-stdin"); err != nil {
		s.t.Fatalf("user add %s: %v\n%s", address, err, out)
	}
}

// mailboxes returns `postern mailbox list` as name -> [messages, unseen, size].
func (s *server) mailboxes(address string) map[string][3]int64 {
	s.t.Helper()
	out := s.run("mailbox", "list", address)
	m := map[string][3]int64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			s.t.Fatalf("mailbox list line %q: want 4 tab-separated fields", sc.Text())
		}
		var v [3]int64
		for i := range v {
			fmt.Sscan(f[i+1], &v[i])
		}
		m[f[0]] = v
	}
	return m
}

// inboxCount is the number of messages in a user's INBOX.
func (s *server) inboxCount(address string) int64 { return s.mailboxes(address)["INBOX"][0] }

// waitInbox polls until the INBOX holds want messages (delivery is synchronous; this only absorbs CLI start-up).
func (s *server) waitInbox(address string, want int64) {
	s.t.Helper()
	got := s.inboxCount(address)
	if got != want {
		s.t.Fatalf("%s INBOX has %d messages, want %d", address, got, want)
	}
}

// mailLog returns the mail log's contents.
func (s *server) mailLog() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "data", "mail.log"))
	return string(b)
}
