package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-sasl"

	"github.com/postern/postern/internal/store"
)

// recorder is a checkFunc that remembers what it was given and accepts everything.
type recorder struct {
	calls    int
	username string
	password string
}

func (r *recorder) check(username, password string) error {
	r.calls++
	r.username, r.password = username, password
	return nil
}

func b64dec(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPlainVectors uses /work/shared/testdata/sasl/sasl-vectors.md (RFC 4616 2 and 4, RFC 4954 4).
func TestPlainVectors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, b64, user, pw string
		ok                  bool
	}{
		{"RFC 4616 4 tim", "AHRpbQB0YW5zdGFhZnRhbnN0YWFm", "tim", "tanstaaftanstaaf", true},
		{"RFC 4616 4 Ursel acting as Kurt", "VXJzZWwAS3VydAB4aXBqM3BsbXE=", "", "", false},
		{"RFC 4954 4 authzid = authcid", "dGVzdAB0ZXN0ADEyMzQ=", "test", "1234", true},
	} {
		r := &recorder{}
		srv, _ := newSASLServer("PLAIN", r.check)
		ch, done, err := srv.Next(b64dec(t, tt.b64))
		if !done || ch != nil || (err == nil) != tt.ok {
			t.Errorf("%s: challenge %q done %v err %v", tt.name, ch, done, err)
		}
		if tt.ok && (r.calls != 1 || r.username != tt.user || r.password != tt.pw) {
			t.Errorf("%s: checked %q/%q (%d calls); want %q/%q", tt.name, r.username, r.password, r.calls, tt.user, tt.pw)
		}
		if !tt.ok && r.calls != 0 {
			t.Errorf("%s: credentials checked for a refused message", tt.name)
		}
	}
}

func TestPlainMalformed(t *testing.T) {
	t.Parallel()
	for name, msg := range map[string]string{
		"missing NULs":   "timtanstaaf",
		"one NUL":        "tim\x00pw",
		"more than 2":    "\x00tim\x00pw\x00x",
		"empty authcid":  "\x00\x00pw",
		"empty passwd":   "\x00tim\x00",
		"non-UTF-8 user": "\x00t\xffm\x00pw",
		"non-UTF-8 pw":   "\x00tim\x00p\xc3",
		"huge passwd":    "\x00tim\x00" + strings.Repeat("p", 2000),
		"other authzid":  "bob@example.org\x00tim@example.org\x00pw",
	} {
		r := &recorder{}
		srv, _ := newSASLServer("PLAIN", r.check)
		if _, _, err := srv.Next([]byte(msg)); err == nil || r.calls != 0 || !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s: err %v, %d checks; want a refusal wrapping ErrInvalidCredentials before any check", name, err, r.calls)
		}
	}
	// An authzid that names the same address in another case is the same identity.
	r := &recorder{}
	srv, _ := newSASLServer("plain", r.check)
	if _, _, err := srv.Next([]byte("Tim@Example.ORG\x00tim@example.org\x00pw")); err != nil || r.calls != 1 {
		t.Errorf("authzid in another case: %v", err)
	}
	// No initial response: an empty challenge ("334 "), then the message.
	r = &recorder{}
	srv, _ = newSASLServer("PLAIN", r.check)
	if ch, done, err := srv.Next(nil); len(ch) != 0 || done || err != nil {
		t.Fatalf("PLAIN without initial response: %q %v %v", ch, done, err)
	}
	if _, done, err := srv.Next([]byte("\x00tim\x00pw")); !done || err != nil || r.username != "tim" {
		t.Errorf("PLAIN second step: %v %v %q", done, err, r.username)
	}
}

// TestLoginVectors: draft-murchison-sasl-login challenges, with and without the username as initial response.
func TestLoginVectors(t *testing.T) {
	t.Parallel()
	enc := base64.StdEncoding.EncodeToString
	for _, ir := range [][]byte{nil, {}} { // no initial response, and an empty one ("AUTH LOGIN =")
		r := &recorder{}
		srv, _ := newSASLServer("LOGIN", r.check)
		ch, done, err := srv.Next(ir)
		if enc(ch) != "VXNlcm5hbWU6" || done || err != nil {
			t.Fatalf("initial response %q: step 1: %q %v %v", ir, ch, done, err)
		}
		if ch, done, err = srv.Next([]byte("tim@example.org")); enc(ch) != "UGFzc3dvcmQ6" || done || err != nil {
			t.Fatalf("step 2: %q %v %v", ch, done, err)
		}
		if _, done, err = srv.Next([]byte("pw")); !done || err != nil || r.username != "tim@example.org" || r.password != "pw" {
			t.Fatalf("step 3: %v %v %+v", done, err, r)
		}
		if _, _, err = srv.Next([]byte("more")); err == nil {
			t.Error("a response after the exchange accepted")
		}
	}
	// The seed transcript: AUTH LOGIN dXNlcjNAMTYzLmNvbQ== -> 334 UGFzc3dvcmQ6.
	r := &recorder{}
	srv, _ := newSASLServer("login", r.check)
	if ch, done, err := srv.Next(b64dec(t, "dXNlcjNAMTYzLmNvbQ==")); enc(ch) != "UGFzc3dvcmQ6" || done || err != nil {
		t.Fatalf("initial response: %q %v %v", ch, done, err)
	}
	if _, done, err := srv.Next([]byte("secret")); !done || err != nil || r.username != "user3@163.com" {
		t.Fatalf("password: %v %v %+v", done, err, r)
	}
	for name, steps := range map[string][][]byte{
		"empty username": {nil, {}}, "empty password": {[]byte("tim"), {}}, "non-UTF-8": {[]byte("t\xffm")},
	} {
		r := &recorder{}
		srv, _ := newSASLServer("LOGIN", r.check)
		var err error
		for _, s := range steps {
			_, _, err = srv.Next(s)
		}
		if err == nil || r.calls != 0 {
			t.Errorf("%s: err %v, %d checks", name, err, r.calls)
		}
	}
}

// TestSASLService drives the Service's SASL servers with go-sasl's own clients.
func TestSASLService(t *testing.T) {
	t.Parallel()
	s := newService(t, newUsers(t), nil)
	ctx := context.Background()
	if got := s.MechanismsFor(nil); !slices.Equal(got, []string{"PLAIN", "LOGIN"}) {
		t.Errorf("MechanismsFor(nil) = %v", got)
	}
	for _, tt := range []struct {
		mech   string
		client sasl.Client
		ok     bool
	}{
		{"PLAIN", sasl.NewPlainClient("", "Tim@example.org", timPassword), true},
		{"PLAIN", sasl.NewPlainClient("tim@example.org", "tim@example.org", timPassword), true},
		{"PLAIN", sasl.NewPlainClient("", "tim@example.org", "wrong"), false},
		{"PLAIN", sasl.NewPlainClient("", "tim", timPassword), false}, // RFC 4616's authcid is no address here
		{"LOGIN", sasl.NewLoginClient("tim@example.org", timPassword), true},
		{"LOGIN", sasl.NewLoginClient("tim@example.org", "wrong"), false},
	} {
		var got store.User
		srv, err := s.SASLConn(ctx, SASLRequest{IP: testIP, Mech: tt.mech, OnSuccess: func(u store.User) { got = u }})
		if err != nil {
			t.Fatal(err)
		}
		err = exchange(tt.client, srv)
		if tt.ok && (err != nil || got.ID != 1) {
			t.Errorf("%s: %v, user %+v", tt.mech, err, got)
		}
		if !tt.ok && (!errors.Is(err, ErrInvalidCredentials) || got.ID != 0) {
			t.Errorf("%s: err %v, user %+v; want ErrInvalidCredentials", tt.mech, err, got)
		}
	}
	if _, err := s.SASLConn(ctx, SASLRequest{IP: testIP, Mech: "GSSAPI"}); err == nil {
		t.Error("unknown mechanism accepted")
	}
}

// exchange runs a client against a server as a protocol server would, initial response included.
func exchange(c sasl.Client, srv sasl.Server) error {
	_, resp, err := c.Start()
	if err != nil {
		return err
	}
	for i := 0; i < 5; i++ {
		ch, done, err := srv.Next(resp)
		if err != nil || done {
			return err
		}
		if resp, err = c.Next(ch); err != nil {
			return err
		}
	}
	return errors.New("exchange does not end")
}

// FuzzLoginPlain feeds two client responses to PLAIN and LOGIN and checks what reaches the credential check.
func FuzzLoginPlain(f *testing.F) {
	f.Add([]byte("\x00tim@example.org\x00pw"), []byte("x"))
	f.Add([]byte("\x00tim\x00tanstaaftanstaaf"), []byte(nil))
	f.Add([]byte("Ursel\x00Kurt\x00xipj3plmq"), []byte(nil))
	f.Add([]byte("user3@163.com"), []byte("secret"))
	f.Add([]byte{}, []byte("tim@example.org"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		fuzzPlain(t, a)
		fuzzLogin(t, a, b)
	})
}

func fuzzPlain(t *testing.T, a []byte) {
	r := &recorder{}
	srv, _ := newSASLServer("PLAIN", r.check)
	if a == nil {
		a = []byte{}
	}
	_, done, err := srv.Next(a)
	if !done {
		t.Fatalf("PLAIN %q: not done after a response", a)
	}
	parts := bytes.Split(a, []byte{0})
	if r.calls > 0 { // only a well-formed message with this authcid and passwd reaches the check
		if len(parts) != 3 || string(parts[1]) != r.username || string(parts[2]) != r.password ||
			r.username == "" || r.password == "" || !utf8.ValidString(r.username+r.password) {
			t.Fatalf("PLAIN %q: checked %q/%q", a, r.username, r.password)
		}
	}
	wellFormed := len(parts) == 3 && len(parts[0]) == 0 && len(parts[1]) > 0 && len(parts[2]) > 0 &&
		len(parts[1]) <= maxCredential && len(parts[2]) <= maxCredential && utf8.Valid(parts[1]) && utf8.Valid(parts[2])
	if (err == nil) != (r.calls == 1) || wellFormed && err != nil {
		t.Fatalf("PLAIN %q: err %v after %d checks (well-formed %v)", a, err, r.calls, wellFormed)
	}
}

func fuzzLogin(t *testing.T, a, b []byte) {
	r := &recorder{}
	srv, _ := newSASLServer("LOGIN", r.check)
	ch, done, err := srv.Next(a)
	if len(a) == 0 {
		if string(ch) != "Username:" || done || err != nil {
			t.Fatalf("LOGIN %q: %q %v %v", a, ch, done, err)
		}
		return
	}
	if err != nil {
		if !done || r.calls != 0 {
			t.Fatalf("LOGIN %q: refused but done=%v checks=%d", a, done, r.calls)
		}
		return
	}
	if string(ch) != "Password:" || done {
		t.Fatalf("LOGIN %q: %q %v", a, ch, done)
	}
	_, done, err = srv.Next(b)
	if !done || (err == nil) != (r.calls == 1) || r.calls == 1 && (r.username != string(a) || r.password != string(b)) {
		t.Fatalf("LOGIN %q %q: done=%v err=%v %+v", a, b, done, err, r)
	}
	if _, _, err := srv.Next(b); err == nil {
		t.Fatalf("LOGIN %q %q: a third response accepted", a, b)
	}
}
