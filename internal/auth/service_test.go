package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/store"
)

// fakeUsers is an in-memory UserStore keyed by normalized address.
type fakeUsers struct {
	mu      sync.Mutex // guards users, lookups
	users   map[string]store.User
	lookups int
	fail    error // returned by every lookup when set
}

func (f *fakeUsers) GetUser(_ context.Context, a string) (store.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if f.fail != nil {
		return store.User{}, f.fail
	}
	if u, ok := f.users[a]; ok {
		return u, nil
	}
	return store.User{}, fmt.Errorf("%s: %w", a, store.ErrNotFound)
}

func (f *fakeUsers) SetPassword(_ context.Context, a, hash string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[a]
	if !ok {
		return store.ErrNotFound
	}
	u.PasswordHash = hash
	f.users[a] = u
	return nil
}

func (f *fakeUsers) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups
}

const (
	timPassword = "tanstaaftanstaaf"
	delay       = 50 * time.Millisecond
)

var testIP = netip.MustParseAddr("192.0.2.7")

func newUsers(t *testing.T) *fakeUsers {
	t.Helper()
	h, err := HashPassword(timPassword)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeUsers{users: map[string]store.User{
		"tim@example.org":    {ID: 1, Address: "tim@example.org", PasswordHash: h},
		"broken@example.org": {ID: 2, Address: "broken@example.org", PasswordHash: "{PLAIN}" + timPassword},
	}}
}

func newService(t *testing.T, users *fakeUsers, lock *Lockout) *Service {
	t.Helper()
	s, err := New(Options{Users: users, Lockout: lock, FailureDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	s := newService(t, newUsers(t), nil)
	ctx := context.Background()
	for _, name := range []string{"tim@example.org", "Tim@Example.ORG", "TIM@EXAMPLE.ORG."} {
		if u, err := s.Authenticate(ctx, testIP, name, timPassword); err != nil || u.ID != 1 {
			t.Errorf("%s: %+v %v", name, u, err)
		}
	}
	for _, c := range []struct{ name, user, pw string }{
		{"wrong password", "tim@example.org", "wrong"},
		{"unknown user", "nobody@example.org", timPassword},
		{"not an address", "tim", timPassword},
		{"empty", "", ""},
		{"empty password", "tim@example.org", ""},
		{"huge password", "tim@example.org", strings.Repeat("x", 5000)},
		{"plain-text stored hash", "broken@example.org", timPassword},
	} {
		start := time.Now()
		_, err := s.Authenticate(ctx, testIP, c.user, c.pw)
		if !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s: err %v; want ErrInvalidCredentials", c.name, err)
		}
		if d := time.Since(start); d < delay {
			t.Errorf("%s: failure took %v, less than FailureDelay %v", c.name, d, delay)
		}
	}
}

func TestAuthenticateStoreError(t *testing.T) {
	t.Parallel()
	users := newUsers(t)
	users.fail = errors.New("database is locked")
	lock := NewLockout(LockoutOptions{Failures: 1})
	s := newService(t, users, lock)
	start := time.Now()
	_, err := s.Authenticate(context.Background(), testIP, "tim@example.org", timPassword)
	if err == nil || errors.Is(err, ErrInvalidCredentials) || !errors.Is(err, users.fail) {
		t.Fatalf("err %v; want the wrapped store error", err)
	}
	if time.Since(start) < delay {
		t.Error("a store failure was not padded")
	}
	if lock.Locked(testIP) {
		t.Error("a store failure counted towards the lockout")
	}
}

func TestAuthenticateContext(t *testing.T) {
	t.Parallel()
	s, err := New(Options{Users: newUsers(t), FailureDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := s.Authenticate(ctx, testIP, "tim@example.org", "wrong"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("failure ignored the context: took %v", d)
	}
}

func TestAuthenticateLockout(t *testing.T) {
	t.Parallel()
	c := newClock()
	lock := NewLockout(LockoutOptions{Failures: 3, Window: time.Minute, Duration: time.Hour, Now: c.Now})
	users := newUsers(t)
	s := newService(t, users, lock)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := s.Authenticate(ctx, testIP, "tim@example.org", "wrong"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	before := users.count()
	start := time.Now()
	if _, err := s.Authenticate(ctx, testIP, "tim@example.org", timPassword); !errors.Is(err, ErrLockedOut) {
		t.Fatalf("locked IP with the right password: %v", err)
	}
	if time.Since(start) < delay {
		t.Error("a locked-out attempt was not padded")
	}
	if users.count() != before {
		t.Error("a locked-out attempt looked the user up (the password must not be checked)")
	}
	if _, err := s.Authenticate(ctx, netip.MustParseAddr("192.0.2.8"), "tim@example.org", timPassword); err != nil {
		t.Fatalf("another IP: %v", err)
	}
	c.Advance(time.Hour)
	if _, err := s.Authenticate(ctx, testIP, "tim@example.org", timPassword); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	if _, err := New(Options{}); err == nil {
		t.Error("New without a user store succeeded")
	}
	s, err := New(Options{Users: newUsers(t)})
	if err != nil || s.opts.FailureDelay != time.Second {
		t.Errorf("default FailureDelay %v, %v", s.opts.FailureDelay, err)
	}
}
