package auth

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/xdg-go/scram"
)

// The vectors of /work/shared/testdata/sasl/sasl-vectors.md (PLAIN and LOGIN are in sasl_test.go).

// TestCRAMMD5Vector: RFC 2195 2 example.
func TestCRAMMD5Vector(t *testing.T) {
	t.Parallel()
	const challengeB64 = "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
	challenge := b64dec(t, challengeB64)
	if string(challenge) != "<1896.697170952@postoffice.reston.mci.net>" {
		t.Fatalf("challenge decodes to %q", challenge)
	}
	cred, err := newCRAMCred("tanstaaftanstaaf")
	if err != nil {
		t.Fatal(err)
	}
	var gotUser string
	srv := &cramServer{challenge: challenge, verify: func(username string, digest []byte) error {
		gotUser = username
		ok, err := cramVerify(cred, challenge, digest)
		if err != nil || !ok {
			return ErrInvalidCredentials
		}
		return nil
	}}
	ch, done, err := srv.Next(nil)
	if base64.StdEncoding.EncodeToString(ch) != challengeB64 || done || err != nil {
		t.Fatalf("step 1: %q %v %v", ch, done, err)
	}
	resp := b64dec(t, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw")
	if string(resp) != "tim b913a602c7eda7a495b4e6e7334d3890" {
		t.Fatalf("response decodes to %q", resp)
	}
	if _, done, err := srv.Next(resp); !done || err != nil || gotUser != "tim" {
		t.Fatalf("RFC 2195 response refused: %v %v %q", done, err, gotUser)
	}
	// The stored secret round-trips through the credential set format.
	c, err := parseCredentials(credentials{primary: "$argon2id$x", cram: cred}.String())
	if err != nil || c.cram == nil {
		t.Fatalf("parse: %v", err)
	}
	if d, err := c.cram.digest(challenge); err != nil || hex.EncodeToString(d) != "b913a602c7eda7a495b4e6e7334d3890" {
		t.Fatalf("digest after round trip: %x %v", d, err)
	}
	for name, bad := range map[string]string{
		"wrong digest":  "tim b913a602c7eda7a495b4e6e7334d3891",
		"short digest":  "tim b913a602c7eda7a495b4e6e7334d389",
		"not hex":       "tim z913a602c7eda7a495b4e6e7334d3890",
		"no space":      "timb913a602c7eda7a495b4e6e7334d3890",
		"empty user":    " b913a602c7eda7a495b4e6e7334d3890",
		"other user":    "tom b913a602c7eda7a495b4e6e7334d3890x",
		"empty message": "",
	} {
		srv := &cramServer{challenge: challenge, verify: srv.verify}
		srv.Next(nil)
		if _, done, err := srv.Next([]byte(bad)); !done || !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s: done %v err %v", name, done, err)
		}
	}
	// No initial response allowed: the server speaks first.
	srv = &cramServer{challenge: challenge, verify: srv.verify}
	if _, done, err := srv.Next(resp); !done || err == nil {
		t.Errorf("initial response accepted: %v %v", done, err)
	}
}

// scramVector is one exchange of RFC 5802 5 or RFC 7677 3.
type scramVector struct {
	hashName, salt, serverNonce                        string
	clientFirst, serverFirst, clientFinal, serverFinal string
}

var (
	rfc5802 = scramVector{"sha-1", "QSXCR+Q6sek8bf92", "3rfcNHYJY1ZVvWVs7j",
		"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="}
	rfc7677 = scramVector{"sha-256", "W22ZaJ0SNY7soEsUEjb6gQ==", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
		"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
		"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="}
)

// vectorServer returns a SCRAM server for user "user", password "pencil" with v's salt and nonce; valid records
// what finish saw.
func vectorServer(t *testing.T, v scramVector, valid *bool) *scramServer {
	t.Helper()
	cred := newSCRAMCred(v.hashName, "pencil", b64dec(t, v.salt), 4096)
	return &scramServer{
		hashName: v.hashName,
		lookup: func(username string) (scram.StoredCredentials, error) {
			if username != "user" {
				return fakeSCRAM([]byte("k"), v.hashName, username, 4096), nil
			}
			return storedSCRAM(cred), nil
		},
		finish: func(_ string, ok bool, why error) error {
			*valid = ok
			if !ok {
				if why == nil {
					why = ErrInvalidCredentials
				}
				return why
			}
			return nil
		},
		nonce: func() string { return v.serverNonce },
	}
}

// TestSCRAMVectors: the server accepts the RFCs' client proofs and answers exactly their server messages.
func TestSCRAMVectors(t *testing.T) {
	t.Parallel()
	for _, v := range []scramVector{rfc5802, rfc7677} {
		var valid bool
		srv := vectorServer(t, v, &valid)
		ch, done, err := srv.Next(nil) // no initial response: empty challenge first
		if len(ch) != 0 || done || err != nil {
			t.Fatalf("%s: empty challenge: %q %v %v", v.hashName, ch, done, err)
		}
		ch, done, err = srv.Next([]byte(v.clientFirst))
		if string(ch) != v.serverFirst || done || err != nil {
			t.Fatalf("%s: server-first %q %v %v; want %q", v.hashName, ch, done, err, v.serverFirst)
		}
		ch, done, err = srv.Next([]byte(v.clientFinal))
		if string(ch) != v.serverFinal || done || err != nil || !valid {
			t.Fatalf("%s: server-final %q %v %v; want %q", v.hashName, ch, done, err, v.serverFinal)
		}
		if _, done, err = srv.Next([]byte{}); !done || err != nil {
			t.Fatalf("%s: empty response after server-final: %v %v", v.hashName, done, err)
		}
	}
}

// TestSCRAMNegative: sasl-vectors.md's negative cases, on the RFC 7677 exchange.
func TestSCRAMNegative(t *testing.T) {
	t.Parallel()
	v := rfc7677
	tamper := func(old, new string) string { return strings.Replace(v.clientFinal, old, new, 1) }
	for _, tt := range []struct {
		name, first, final string
		plus, advertised   bool
		failFirst          bool
	}{
		{name: "wrong proof", final: tamper("p=dHz", "p=eHz")},
		{name: "tampered nonce", final: tamper("$k0,", "$k1,")},
		{name: "c= not biws without binding", final: tamper("c=biws", "c=eSws")},
		{name: "y flag while -PLUS offered", first: "y" + v.clientFirst[1:], advertised: true, failFirst: true},
		{name: "p flag without -PLUS name", first: "p=tls-exporter" + v.clientFirst[1:], failFirst: true},
		{name: "-PLUS name without binding", first: v.clientFirst, plus: true, failFirst: true},
		{name: "-PLUS with unavailable binding", first: "p=tls-unique" + v.clientFirst[1:], plus: true, failFirst: true},
		{name: "other authzid", first: "n,a=admin," + v.clientFirst[3:], failFirst: true},
		{name: "no GS2 header", first: "n=user,r=abc", failFirst: true},
		{name: "bad flag", first: "x,," + v.clientFirst[3:], failFirst: true},
		{name: "extension", first: "n,,m=ext,n=user,r=abc", failFirst: true},
	} {
		var valid bool
		srv := vectorServer(t, v, &valid)
		srv.plus, srv.advertised = tt.plus, tt.advertised
		first := v.clientFirst
		if tt.first != "" {
			first = tt.first
		}
		_, done, err := srv.Next([]byte(first))
		if tt.failFirst {
			if !done || !errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("%s: client-first accepted: %v %v", tt.name, done, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: client-first: %v", tt.name, err)
		}
		if _, done, err := srv.Next([]byte(tt.final)); !done || !errors.Is(err, ErrInvalidCredentials) || valid {
			t.Errorf("%s: client-final: done %v err %v valid %v", tt.name, done, err, valid)
		}
	}
	// y is fine when -PLUS was not offered (RFC 5802 6), and a= naming the user itself is no proxying.
	for _, first := range []string{"y" + v.clientFirst[1:], "n,a=user," + v.clientFirst[3:]} {
		var valid bool
		srv := vectorServer(t, v, &valid)
		if _, _, err := srv.Next([]byte(first)); err != nil {
			t.Errorf("%q refused: %v", first, err)
		}
	}
	// An unknown user gets a plausible salt and iteration count, the same at every attempt, and fails at the proof.
	var valid bool
	a, _, _ := vectorServer(t, v, &valid).Next([]byte("n,,n=nobody,r=abc"))
	b, _, _ := vectorServer(t, v, &valid).Next([]byte("n,,n=nobody,r=abc"))
	if !strings.Contains(string(a), ",s=") || !strings.HasSuffix(string(a), ",i=4096") || string(a[strings.Index(string(a), ",s="):]) != string(b[strings.Index(string(b), ",s="):]) {
		t.Errorf("unknown user server-first %q then %q", a, b)
	}
}

// TestSASLprepVectors: RFC 4013 3 examples.
func TestSASLprepVectors(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"I\u00ADX": "IX",
		"user":     "user",
		"USER":     "USER",
		"\u00AA":   "a",
		"\u2168":   "IX",
	} {
		if got, err := SASLprep(in); got != want || err != nil {
			t.Errorf("SASLprep(%+q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"\u0007", "\u0627\u0031"} {
		if got, err := SASLprep(in); err == nil {
			t.Errorf("SASLprep(%+q) = %q; want an error", in, got)
		}
	}
	// SCRAM secrets are derived from the prepared password: a client typing "I\u00ADX" logs in for "IX".
	a := newSCRAMCred("sha-256", "IX", []byte("salt"), 4096)
	p, _ := SASLprep("I\u00ADX")
	if b := newSCRAMCred("sha-256", p, []byte("salt"), 4096); string(a.stored) != string(b.stored) {
		t.Error("prepared passwords give different keys")
	}
}
