package dkim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

// RFC 8463 Appendix A: the Ed25519 and RSA keys of football.example.com and the signed message A.3. Both
// algorithms are deterministic, so the known answer covers signing, not only verifying.
const (
	vectors       = "../../../shared/testdata/dkim/rfc-vectors/"
	rfc8463Seed   = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=" // A.1 private key
	rfc8463Record = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
	rfc8463BH     = "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="
)

func readVector(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(vectors + name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return b
}

// rfc8463Keys writes the RFC's two keys as this package's key files of football.example.com.
func rfc8463Keys(t *testing.T) Keys {
	t.Helper()
	seed, _ := base64.StdEncoding.DecodeString(rfc8463Seed)
	edDER, err := x509.MarshalPKCS8PrivateKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(readVector(t, "rfc8463-rsa-test.private.pem"))
	rsaKey, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	ks := Keys{Dir: t.TempDir()}
	for sel, der := range map[string][]byte{SelectorEd25519: edDER, SelectorRSA: rsaDER} {
		path := ks.path("football.example.com", sel)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := writeFileSync(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
			t.Fatal(err)
		}
	}
	return ks
}

// TestRFC8463SigningVector: the keys as Keys loads them reproduce the b= values of RFC 8463 A.3 byte for byte
// over the RFC's own DKIM-Signature fields, the Ed25519 key publishes the RFC's A.2 record, and Signer's own
// signatures of the A.3 message carry the RFC's body hash and verify with the RFC's DNS records.
func TestRFC8463SigningVector(t *testing.T) {
	ks := rfc8463Keys(t)
	keys, err := ks.Load("football.example.com")
	if err != nil || len(keys) != 2 {
		t.Fatalf("Load = %v, %v", keys, err)
	}
	byAlg := map[string]Key{}
	for _, k := range keys {
		byAlg[k.Alg] = k
	}
	if _, rec, _ := byAlg[AlgEd25519].Record(); rec != rfc8463Record {
		t.Errorf("ed25519 record %q, want %q", rec, rfc8463Record)
	}

	msg := bytes.ReplaceAll(readVector(t, "rfc8463-A3.eml"), []byte("\r\n"), []byte("\n"))
	msg = bytes.ReplaceAll(msg, []byte("\n"), []byte("\r\n"))
	head, body, _ := strings.Cut(string(msg), "\r\n\r\n")
	fields := splitFields(head)
	sigFields, other := fields[:2], fields[2:]

	// 1. Known answer: re-sign the RFC's signature fields (b= emptied) with the loaded keys.
	for i, alg := range []string{AlgEd25519, AlgRSA} {
		want := tagB.FindStringSubmatch(sigFields[i])[1]
		want = strings.Join(strings.Fields(want), "")
		unsigned := tagB.ReplaceAllString(sigFields[i], "b=")
		h := sha256.New()
		for _, name := range []string{"from", "to", "subject", "date", "message-id"} {
			h.Write([]byte(relaxedHeader(pick(other, name)) + "\r\n"))
		}
		h.Write([]byte(relaxedHeader(unsigned)))
		var opts crypto.SignerOpts = crypto.SHA256
		if alg == AlgEd25519 {
			opts = crypto.Hash(0) // RFC 8463 3: PureEdDSA over the SHA-256 hash
		}
		sig, err := byAlg[alg].Signer.Sign(nil, h.Sum(nil), opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := base64.StdEncoding.EncodeToString(sig); got != want {
			t.Errorf("%s b=\n got %s\nwant %s", alg, got, want)
		}
	}

	// 2. Signer on the unsigned A.3 message: same body hash, and the signatures verify with the RFC's records.
	unsignedMsg := strings.Join(other, "") + "\r\n" + body
	out, err := (&Signer{Keys: ks}).Sign(context.Background(), strings.NewReader(unsignedMsg))
	if err != nil || strings.Count(out, "DKIM-Signature:") != 2 {
		t.Fatalf("Sign = %q, %v", out, err)
	}
	if strings.Count(out, "bh="+rfc8463BH) != 2 {
		t.Errorf("body hash differs from RFC 8463 A.3: %s", out)
	}
	records := map[string]string{}
	for _, k := range keys {
		name, value, _ := k.Record()
		records[name] = value
	}
	vs, err := dkim.VerifyWithOptions(strings.NewReader(out+unsignedMsg), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return []string{records[name]}, nil }})
	if err != nil || len(vs) != 2 || vs[0].Err != nil || vs[1].Err != nil {
		t.Fatalf("verify: %v %+v", err, vs)
	}
}

var tagB = regexp.MustCompile(`(?s)\bb=([^;]*)`)

// splitFields splits a header block (CRLF line ends) into its fields, folded lines kept with their field.
func splitFields(head string) []string {
	var out []string
	for _, line := range strings.SplitAfter(head+"\r\n", "\r\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1] += line
			continue
		}
		out = append(out, line)
	}
	return out
}

func pick(fields []string, name string) string {
	for _, f := range fields {
		if k, _, _ := strings.Cut(f, ":"); strings.EqualFold(strings.TrimSpace(k), name) {
			return f
		}
	}
	return ""
}

// relaxedHeader is RFC 6376 3.4.2 without the trailing CRLF.
func relaxedHeader(f string) string {
	k, v, _ := strings.Cut(f, ":")
	v = strings.NewReplacer("\r\n", "").Replace(v)
	v = strings.Join(strings.Fields(v), " ")
	return strings.ToLower(strings.TrimSpace(k)) + ":" + v
}
