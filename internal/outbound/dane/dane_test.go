package dane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/postern/postern/internal/dns"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// issue creates a certificate for name signed by parent (self-signed when parent is nil).
func issue(t *testing.T, name string, ca bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, notAfter time.Time) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-24 * time.Hour),
		NotAfter: notAfter, BasicConstraintsValid: true, IsCA: ca}
	if ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.DNSNames = []string{name}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestVerify(t *testing.T) {
	year := now.Add(365 * 24 * time.Hour)
	root, rootKey := issue(t, "Root", true, nil, nil, year)
	inter, interKey := issue(t, "Intermediate", true, root, rootKey, year)
	leaf, _ := issue(t, "mx.example.test", false, inter, interKey, year)
	expired, _ := issue(t, "mx.example.test", false, inter, interKey, now.Add(-time.Hour))
	other, _ := issue(t, "other.example.test", false, inter, interKey, year)
	stranger, _ := issue(t, "mx.example.test", false, nil, nil, year) // self-signed, unrelated
	chain := []*x509.Certificate{leaf, inter, root}
	names := []string{"mx.example.test"}
	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
		recs  []dns.TLSA
		ok    bool
	}{
		{"EE spki sha256", chain, []dns.TLSA{Record(3, 1, 1, leaf)}, true},
		{"EE cert full", chain, []dns.TLSA{Record(3, 0, 0, leaf)}, true},
		{"EE cert sha512", chain, []dns.TLSA{Record(3, 0, 2, leaf)}, true},
		// RFC 7672 3.1.1: with DANE-EE neither the name nor the dates matter.
		{"EE ignores name", []*x509.Certificate{other}, []dns.TLSA{Record(3, 1, 1, other)}, true},
		{"EE ignores expiry", []*x509.Certificate{expired}, []dns.TLSA{Record(3, 1, 1, expired)}, true},
		{"EE of another key", chain, []dns.TLSA{Record(3, 1, 1, stranger)}, false},
		{"TA intermediate", chain, []dns.TLSA{Record(2, 0, 1, inter)}, true},
		{"TA root spki", chain, []dns.TLSA{Record(2, 1, 1, root)}, true},
		{"TA root sha512, no intermediate", []*x509.Certificate{leaf, inter}, []dns.TLSA{Record(2, 1, 2, inter)}, true},
		{"TA wrong name", []*x509.Certificate{other, inter, root}, []dns.TLSA{Record(2, 0, 1, inter)}, false},
		{"TA expired leaf", []*x509.Certificate{expired, inter, root}, []dns.TLSA{Record(2, 0, 1, inter)}, false},
		{"TA not in chain", []*x509.Certificate{leaf, inter}, []dns.TLSA{Record(2, 0, 1, root)}, false},
		{"TA matching only the leaf", chain, []dns.TLSA{Record(2, 1, 1, leaf)}, false},
		{"TA unrelated chain", []*x509.Certificate{stranger, inter}, []dns.TLSA{Record(2, 0, 1, inter)}, false},
		// RFC 7672 3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable in SMTP.
		{"PKIX-EE unusable", chain, []dns.TLSA{Record(1, 1, 1, leaf)}, false},
		{"PKIX-TA unusable", chain, []dns.TLSA{Record(0, 1, 1, root)}, false},
		{"unusable then usable", chain, []dns.TLSA{Record(1, 1, 1, leaf), {Usage: 3, Selector: 2, MatchingType: 1}, Record(3, 1, 1, leaf)}, true},
		{"no records", chain, nil, false},
		{"no certificate", nil, []dns.TLSA{Record(3, 1, 1, leaf)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(tc.chain, tc.recs, names, now)
			if (err == nil) != tc.ok {
				t.Fatalf("Verify = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && len(tc.chain) > 0 && !errors.Is(err, ErrNoMatch) {
				t.Fatalf("error %v is not ErrNoMatch", err)
			}
		})
	}
}

func TestUsable(t *testing.T) {
	sum32, sum64 := make([]byte, 32), make([]byte, 64)
	recs := []dns.TLSA{
		{Usage: 3, Selector: 1, MatchingType: 1, Data: sum32}, // usable
		{Usage: 2, Selector: 0, MatchingType: 2, Data: sum64}, // usable
		{Usage: 3, Selector: 0, MatchingType: 0, Data: []byte{0x30}},
		{Usage: 1, Selector: 1, MatchingType: 1, Data: sum32}, // PKIX-EE
		{Usage: 0, Selector: 1, MatchingType: 1, Data: sum32}, // PKIX-TA
		{Usage: 4, Selector: 1, MatchingType: 1, Data: sum32},
		{Usage: 3, Selector: 2, MatchingType: 1, Data: sum32},
		{Usage: 3, Selector: 1, MatchingType: 3, Data: sum32},
		{Usage: 3, Selector: 1, MatchingType: 1, Data: sum64}, // wrong length for SHA-256
		{Usage: 3, Selector: 1, MatchingType: 0},              // empty
	}
	if got := Usable(recs); len(got) != 3 {
		t.Fatalf("Usable kept %d records: %v", len(got), got)
	}
}
