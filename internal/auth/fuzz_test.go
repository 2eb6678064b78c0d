package auth

import (
	"errors"
	"strings"
	"testing"
)

// FuzzCRAMMD5 feeds a response to CRAM-MD5: it must never panic, and only a well-formed "user SP 32 hex" answer
// may reach the check.
func FuzzCRAMMD5(f *testing.F) {
	f.Add([]byte("tim b913a602c7eda7a495b4e6e7334d3890"))
	f.Add([]byte("tim  b913a602c7eda7a495b4e6e7334d3890"))
	f.Add([]byte("a b c B913A602C7EDA7A495B4E6E7334D3890"))
	f.Add([]byte(" "))
	f.Fuzz(func(t *testing.T, resp []byte) {
		calls := 0
		srv := &cramServer{challenge: []byte("<1.2@h>"), verify: func(username string, digest []byte) error {
			calls++
			if username == "" || len(digest) != 16 || strings.ContainsRune(username, 0) {
				t.Fatalf("checked %q %x", username, digest)
			}
			return nil
		}}
		srv.Next(nil)
		_, done, err := srv.Next(resp)
		if !done || (err == nil) != (calls == 1) {
			t.Fatalf("%q: done %v err %v calls %d", resp, done, err, calls)
		}
		if err != nil && !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("%q: error %v does not wrap ErrInvalidCredentials", resp, err)
		}
	})
}

// FuzzSCRAM feeds a client-first and a client-final message to SCRAM-SHA-256 (with the RFC 7677 user): no
// panic, every refusal wraps ErrInvalidCredentials, and success only for the RFC's own proof.
func FuzzSCRAM(f *testing.F) {
	v := rfc7677
	f.Add(v.clientFirst, v.clientFinal, false)
	f.Add("y"+v.clientFirst[1:], v.clientFinal, true)
	f.Add("p=tls-exporter"+v.clientFirst[1:], "c=cD10bHMtZXhwb3J0ZXIsLA==,r=x,p=AAAA", true)
	f.Add("n,a=user,n=user,r=abc", "c=bixhPXVzZXIs,r=abc,p=", false)
	f.Add("n,,n=us=2Cer,r=abc,ext", "c=biws,r=abc,x=1,p=abc=", false)
	f.Add("n,,n=,r=", "", false)
	f.Fuzz(func(t *testing.T, first, final string, plus bool) {
		var valid bool
		srv := vectorServer(t, v, &valid)
		srv.plus, srv.advertised = plus, plus
		srv.bind = bindings{} // no TLS: every binding type is unavailable
		_, done, err := srv.Next([]byte(first))
		if err != nil {
			if !done || !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("first %q: done %v err %v", first, done, err)
			}
			return
		}
		_, done, err = srv.Next([]byte(final))
		if err != nil && (!done || !errors.Is(err, ErrInvalidCredentials)) {
			t.Fatalf("final %q: done %v err %v", final, done, err)
		}
		if valid && (first != v.clientFirst && !strings.HasPrefix(first, "y,,") || final != v.clientFinal) {
			// Only the RFC's proof matches; "y,," differs from "n,," in c= so it cannot match either.
			t.Fatalf("accepted %q / %q", first, final)
		}
	})
}

// FuzzExternal feeds an authorization identity to EXTERNAL.
func FuzzExternal(f *testing.F) {
	f.Add([]byte("tim@example.org"))
	f.Add([]byte{})
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, authzid []byte) {
		var got string
		srv := &externalServer{verify: func(z string) error { got = z; return nil }}
		_, done, err := srv.Next(authzid)
		if !done || err == nil && got != string(authzid) {
			t.Fatalf("%q: done %v err %v got %q", authzid, done, err, got)
		}
		if _, _, err := srv.Next(authzid); err == nil {
			t.Fatal("a second message accepted")
		}
	})
}

// FuzzCredentials parses stored credential sets: no panic, and what parses formats back to a set that parses to
// the same thing.
func FuzzCredentials(f *testing.F) {
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5")
	f.Add("$argon2id$x $scram-sha-256$i=4096$c2FsdA$" + strings.Repeat("A", 43) + "$" + strings.Repeat("A", 43))
	f.Add("$2a$x $scram-sha-1$i=1$c2FsdA$" + strings.Repeat("A", 27) + "$" + strings.Repeat("A", 27) + " $cram-md5$AA$AA")
	f.Add("h $unknown$x")
	f.Fuzz(func(t *testing.T, stored string) {
		c, err := parseCredentials(stored)
		if err != nil {
			return
		}
		again, err := parseCredentials(c.String())
		if err != nil || again.String() != c.String() {
			t.Fatalf("%q: formatted %q reparses to %q, %v", stored, c.String(), again.String(), err)
		}
		if c.cram != nil {
			if _, err := c.cram.digest([]byte("<x@y>")); err != nil {
				t.Fatalf("parsed CRAM-MD5 secret does not work: %v", err)
			}
		}
	})
}
