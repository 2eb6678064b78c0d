package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/postern/postern/internal/store"
)

type fakeUsers map[string]store.User

func (f fakeUsers) GetUser(_ context.Context, a string) (store.User, error) {
	if u, ok := f[a]; ok {
		return u, nil
	}
	return store.User{}, fmt.Errorf("%s: %w", a, store.ErrNotFound)
}

func TestHashVerify(t *testing.T) {
	h, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := VerifyPassword(h, "s3cret"); !ok || err != nil {
		t.Fatalf("right password: %v %v", ok, err)
	}
	if ok, _ := VerifyPassword(h, "s3creT"); ok {
		t.Fatal("wrong password accepted")
	}
	bc, _ := bcrypt.GenerateFromPassword([]byte("old"), bcrypt.MinCost)
	if ok, err := VerifyPassword(string(bc), "old"); !ok || err != nil {
		t.Fatalf("bcrypt: %v %v", ok, err)
	}
	for _, bad := range []string{"plain", "{MD5}abc", "$argon2id$v=19$m=0,t=0,p=0$$", "$argon2id$x"} {
		if ok, err := VerifyPassword(bad, "plain"); ok || err == nil {
			t.Errorf("hash %q: ok=%v err=%v", bad, ok, err)
		}
	}
}

func newService(t *testing.T, lock *Lockout) *Service {
	h, _ := HashPassword("tanstaaftanstaaf")
	s, err := New(Options{Users: fakeUsers{"tim@example.org": {ID: 1, Address: "tim@example.org", PasswordHash: h}},
		Lockout: lock, FailureDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var ip = netip.MustParseAddr("192.0.2.7")

func TestAuthenticate(t *testing.T) {
	s := newService(t, nil)
	ctx := context.Background()
	if u, err := s.Authenticate(ctx, ip, "Tim@Example.ORG", "tanstaaftanstaaf"); err != nil || u.ID != 1 {
		t.Fatalf("good login: %+v %v", u, err)
	}
	for _, c := range [][2]string{{"tim@example.org", "wrong"}, {"nobody@example.org", "tanstaaftanstaaf"}, {"not an address", "x"}} {
		start := time.Now()
		_, err := s.Authenticate(ctx, ip, c[0], c[1])
		if !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%v: err %v", c, err)
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Errorf("%v: failure took %v, less than the fixed budget", c, d)
		}
	}
}

func TestLockout(t *testing.T) {
	now := time.Unix(1e9, 0)
	lock := NewLockout(LockoutOptions{Failures: 3, Window: time.Minute, Duration: time.Hour, Now: func() time.Time { return now }})
	s := newService(t, lock)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		s.Authenticate(ctx, ip, "tim@example.org", "wrong")
	}
	if _, err := s.Authenticate(ctx, ip, "tim@example.org", "tanstaaftanstaaf"); !errors.Is(err, ErrLockedOut) {
		t.Fatalf("locked IP with right password: %v", err)
	}
	if _, err := s.Authenticate(ctx, netip.MustParseAddr("192.0.2.8"), "tim@example.org", "tanstaaftanstaaf"); err != nil {
		t.Fatalf("other IP: %v", err)
	}
	now = now.Add(61 * time.Minute)
	if _, err := s.Authenticate(ctx, ip, "tim@example.org", "tanstaaftanstaaf"); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	// IPv6 clients are grouped by /64.
	a, b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::ffff")
	for i := 0; i < 3; i++ {
		lock.Fail(a)
	}
	if !lock.Locked(b) {
		t.Fatal("same /64 not locked")
	}
}

// TestSASLVectors uses ../shared/testdata/sasl/sasl-vectors.md (RFC 4616 and draft-murchison-sasl-login).
func TestSASLVectors(t *testing.T) {
	s := newService(t, nil)
	ctx := context.Background()
	var got store.User
	onOK := func(u store.User) { got = u }
	ir, _ := base64.StdEncoding.DecodeString("AHRpbQB0YW5zdGFhZnRhbnN0YWFm") // authzid='' authcid='tim'
	// The vector's authcid is "tim": not an address, so it must fail; the same shape with the address must pass.
	srv, _ := s.SASL(ctx, ip, "PLAIN", onOK)
	if _, done, err := srv.Next(ir); !done || err == nil {
		t.Fatalf("PLAIN tim: done=%v err=%v", done, err)
	}
	srv, _ = s.SASL(ctx, ip, "PLAIN", onOK)
	if _, done, err := srv.Next([]byte("\x00tim@example.org\x00tanstaaftanstaaf")); !done || err != nil || got.ID != 1 {
		t.Fatalf("PLAIN: done=%v err=%v user=%+v", done, err, got)
	}
	srv, _ = s.SASL(ctx, ip, "PLAIN", onOK)
	if _, _, err := srv.Next([]byte("Ursel\x00tim@example.org\x00tanstaaftanstaaf")); err == nil {
		t.Fatal("PLAIN with a foreign authzid accepted")
	}
	for _, bad := range []string{"no-nuls", "a\x00b\x00c\x00d", "\x00\x00pw"} {
		srv, _ = s.SASL(ctx, ip, "PLAIN", onOK)
		if _, _, err := srv.Next([]byte(bad)); err == nil {
			t.Errorf("PLAIN %q accepted", bad)
		}
	}
	// LOGIN, two steps: challenges Username: (VXNlcm5hbWU6) and Password: (UGFzc3dvcmQ6).
	srv, _ = s.SASL(ctx, ip, "LOGIN", onOK)
	ch, done, err := srv.Next(nil)
	if string(ch) != "Username:" || done || err != nil || base64.StdEncoding.EncodeToString(ch) != "VXNlcm5hbWU6" {
		t.Fatalf("LOGIN step 1: %q %v %v", ch, done, err)
	}
	ch, _, _ = srv.Next([]byte("tim@example.org"))
	if base64.StdEncoding.EncodeToString(ch) != "UGFzc3dvcmQ6" {
		t.Fatalf("LOGIN step 2: %q", ch)
	}
	if _, done, err := srv.Next([]byte("tanstaaftanstaaf")); !done || err != nil {
		t.Fatalf("LOGIN step 3: %v %v", done, err)
	}
	// LOGIN with the username as initial response (the seed transcript).
	srv, _ = s.SASL(ctx, ip, "LOGIN", onOK)
	if ch, _, _ := srv.Next([]byte("tim@example.org")); string(ch) != "Password:" {
		t.Fatalf("LOGIN with initial response: %q", ch)
	}
	if _, _, err := srv.Next([]byte("bad")); err == nil {
		t.Fatal("LOGIN wrong password accepted")
	}
	if _, err := s.SASL(ctx, ip, "GSSAPI", onOK); err == nil {
		t.Fatal("unknown mechanism accepted")
	}
}

func FuzzLoginPlain(f *testing.F) {
	f.Add([]byte("\x00tim@example.org\x00pw"), []byte("x"))
	f.Add([]byte("a\x00b"), []byte{})
	lock := NewLockout(LockoutOptions{})
	h, _ := HashPassword("pw")
	s, _ := New(Options{Users: fakeUsers{"tim@example.org": {ID: 1, PasswordHash: h}}, Lockout: lock, FailureDelay: time.Nanosecond})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		for _, mech := range []string{"PLAIN", "LOGIN"} {
			srv, _ := s.SASL(context.Background(), ip, mech, func(store.User) {})
			srv.Next(a)
			srv.Next(b)
			srv.Next(b)
		}
	})
}
