package dkim

import (
	"context"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

func TestSignVerify(t *testing.T) {
	ks := Keys{Dir: t.TempDir()}
	keys, err := ks.Ensure("Example.ORG")
	if err != nil || len(keys) != 2 {
		t.Fatalf("Ensure = %+v, %v", keys, err)
	}
	again, err := ks.Ensure("example.org")
	if err != nil || len(again) != 2 {
		t.Fatalf("second Ensure = %v", err)
	}
	if n1, _, _ := keys[0].Record(); n1 != "postern-rsa._domainkey.example.org" {
		t.Fatalf("record name %q", n1)
	}
	records := map[string]string{}
	for i, k := range keys {
		name, value, err := k.Record()
		if err != nil {
			t.Fatal(err)
		}
		// The key must not change when Ensure runs again.
		if _, v2, _ := again[i].Record(); v2 != value {
			t.Fatalf("Ensure replaced the %s key", k.Alg)
		}
		records[name] = value
	}
	if !strings.HasPrefix(records["postern-ed25519._domainkey.example.org"], "v=DKIM1; k=ed25519; p=") {
		t.Fatalf("ed25519 record %q", records["postern-ed25519._domainkey.example.org"])
	}
	msg := "From: Alice <alice@example.org>\r\nTo: bob@remote.net\r\nSubject: hi\r\nDate: Mon, 2 Jan 2006 15:04:05 +0000\r\n\r\nHello Bob.\r\n"
	s := &Signer{Keys: ks}
	sig, err := s.Sign(context.Background(), strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(sig, "DKIM-Signature:") != 2 {
		t.Fatalf("want two signatures, got %q", sig)
	}
	lookup := func(domain string) ([]string, error) { return []string{records[domain]}, nil }
	vs, err := dkim.VerifyWithOptions(strings.NewReader(sig+msg), &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(vs) != 2 {
		t.Fatalf("verify = %+v, %v", vs, err)
	}
	for _, v := range vs {
		if v.Err != nil || v.Domain != "example.org" {
			t.Errorf("verification %+v", v)
		}
	}
	// Tampering breaks both signatures.
	vs, _ = dkim.VerifyWithOptions(strings.NewReader(sig+strings.Replace(msg, "Hello", "Jello", 1)), &dkim.VerifyOptions{LookupTXT: lookup})
	for _, v := range vs {
		if v.Err == nil {
			t.Errorf("tampered body verified: %+v", v)
		}
	}
	// A domain without keys, or no From, is sent unsigned.
	for _, m := range []string{"From: x@other.net\r\n\r\nx\r\n", "Subject: no from\r\n\r\nx\r\n", "garbage"} {
		if sig, err := s.Sign(context.Background(), strings.NewReader(m)); sig != "" || err != nil {
			t.Errorf("Sign(%q) = %q, %v", m, sig, err)
		}
	}
	if _, err := ks.Ensure("../etc"); err == nil {
		t.Error("Ensure accepted a path as a domain")
	}
}
