package auth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdg-go/scram"
)

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// filterRegexps turns the failregex lines of contrib/fail2ban/filter.d/postern.conf into Go regexps: fail2ban's
// <ADDR> becomes a named group, its syslog prefix (%(__prefix_line)s) empty. The integration test runs the real
// fail2ban-regex; this keeps the filter and the code in step where fail2ban is not installed.
func filterRegexps(t *testing.T) []*regexp.Regexp {
	t.Helper()
	b, err := os.ReadFile("../../contrib/fail2ban/filter.d/postern.conf")
	if err != nil {
		t.Fatal(err)
	}
	var res []*regexp.Regexp
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "failregex ="):
			in = true
			line = strings.TrimPrefix(line, "failregex =")
		case in && strings.HasPrefix(line, " "):
		default:
			in = false
		}
		if !in {
			continue
		}
		re := strings.TrimSpace(line)
		re = strings.ReplaceAll(re, "%(__prefix_line)s", "")
		re = strings.ReplaceAll(re, "<ADDR>", `(?P<addr>[0-9a-fA-F.:]+)`)
		res = append(res, regexp.MustCompile(re))
	}
	if len(res) != 2 {
		t.Fatalf("found %d failregex lines, want 2 (text and JSON)", len(res))
	}
	return res
}

// banned returns the addresses the filter takes from log.
func banned(res []*regexp.Regexp, log string) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		for _, re := range res {
			if m := re.FindStringSubmatch(line); m != nil {
				out = append(out, m[re.SubexpIndex("addr")])
				break
			}
		}
	}
	return out
}

// TestFailureLogLine: every failed attempt, whatever the mechanism, writes one line the fail2ban filter matches
// with the client's address (never an address a crafted username plants), in text and JSON form; no password,
// digest or proof ever reaches the log, even at debug level.
func TestFailureLogLine(t *testing.T) {
	t.Parallel()
	res := filterRegexps(t)
	for _, format := range []string{"text", "json"} {
		var buf syncBuf
		opts := &slog.HandlerOptions{Level: slog.LevelDebug}
		log := slog.New(slog.NewTextHandler(&buf, opts))
		if format == "json" {
			log = slog.New(slog.NewJSONHandler(&buf, opts))
		}
		users := newUsers(t)
		users.addUser(t, 3, "ann@example.org", "pencil", fullHash)
		s, _ := New(Options{Users: users, FailureDelay: -1, Logger: log, SCRAM: true, CRAMMD5: true})
		ctx := context.Background()
		ip := netip.MustParseAddr("192.0.2.77")
		ip6 := netip.MustParseAddr("2001:db8::77")
		const secret = "Sup3rSecretPassw0rd"
		s.Authenticate(ctx, ip, "ann@example.org", secret)
		s.Authenticate(ctx, ip6, `x" remote=198.51.100.1 mech=PLAIN`, secret)
		s.Authenticate(ctx, ip, "evil\nlevel=WARN msg=\"authentication failed\" remote=198.51.100.2 mech=X", secret)
		srv, _ := s.SASLConn(ctx, SASLRequest{IP: ip, Mech: "PLAIN"})
		srv.Next([]byte("\x00ann@example.org\x00" + secret))
		srv, _ = s.SASLConn(ctx, SASLRequest{IP: ip, Mech: "LOGIN"})
		srv.Next([]byte("ann@example.org"))
		srv.Next([]byte(secret))
		srv, _ = s.SASLConn(ctx, SASLRequest{IP: ip, Mech: "CRAM-MD5"})
		ch, _, _ := srv.Next(nil)
		resp, _ := cramClient{"ann@example.org", secret}.Next(ch)
		srv.Next(resp)
		srv, _ = s.SASLConn(ctx, SASLRequest{IP: ip, Mech: "SCRAM-SHA-256"})
		c, _ := scram.SHA256.NewClient("ann@example.org", secret, "")
		scramExchange(c.NewConversation(), srv)
		s.Authenticate(ctx, ip, "ann@example.org", "pencil") // a success logs no failure

		out := buf.String()
		got := banned(res, out)
		want := []string{"192.0.2.77", "2001:db8::77", "192.0.2.77", "192.0.2.77", "192.0.2.77", "192.0.2.77", "192.0.2.77"}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: the filter finds %v; want %v in:\n%s", format, got, want, out)
		}
		if strings.Contains(out, secret) || strings.Contains(out, string(resp[len("ann@example.org "):])) {
			t.Errorf("%s: a credential reached the log:\n%s", format, out)
		}
		if n := strings.Count(out, "\n"); n != len(want) {
			t.Errorf("%s: %d log lines for %d failures:\n%s", format, n, len(want), out)
		}
	}
}

// TestGrowingDelay: from the third recent failure of a client on, each doubles the time a failure takes, up to 8
// times.
func TestGrowingDelay(t *testing.T) {
	t.Parallel()
	const base = 20 * time.Millisecond
	s, _ := New(Options{Users: newUsers(t), FailureDelay: base, Lockout: NewLockout(LockoutOptions{Failures: 6})})
	ctx := context.Background()
	for i, want := range []time.Duration{1, 1, 2, 4, 8, 8} {
		start := time.Now()
		if _, err := s.Authenticate(ctx, testIP, "tim@example.org", "wrong"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
		if d := time.Since(start); d < want*base {
			t.Errorf("failure %d took %v; want at least %v", i+1, d, want*base)
		}
	}
	if _, err := s.Authenticate(ctx, testIP, "tim@example.org", timPassword); !errors.Is(err, ErrLockedOut) {
		t.Errorf("after 6 failures: %v; want ErrLockedOut", err)
	}
}

// TestAccountLockoutService: failures for one account spread over many clients lock it for new clients, while
// its owner's client, which logged in before, still gets in.
func TestAccountLockoutService(t *testing.T) {
	t.Parallel()
	lock := NewLockout(LockoutOptions{AccountFailures: 5})
	s, _ := New(Options{Users: newUsers(t), FailureDelay: -1, Lockout: lock})
	ctx := context.Background()
	home := netip.MustParseAddr("192.0.2.200")
	if _, err := s.Authenticate(ctx, home, "tim@example.org", timPassword); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		if _, err := s.Authenticate(ctx, ip, "Tim@Example.org", "wrong"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	if _, err := s.Authenticate(ctx, netip.MustParseAddr("203.0.113.1"), "tim@example.org", timPassword); !errors.Is(err, ErrLockedOut) {
		t.Errorf("a new client got into a locked account: %v", err)
	}
	if _, err := s.Authenticate(ctx, home, "tim@example.org", timPassword); err != nil {
		t.Errorf("the owner's client is locked out: %v", err)
	}
}
