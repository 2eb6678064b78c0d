package arc

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/postern/postern/internal/dns"
)

// minRSABits is the smallest RSA key accepted: RFC 8301 3.2 says verifiers MUST NOT consider signatures with keys
// under 1024 bits valid.
const minRSABits = 1024

// errTemp marks a key lookup that may succeed later.
var errTemp = errors.New("key lookup failed temporarily")

// publicKey fetches and parses the key record selector._domainkey.domain (RFC 6376 3.6.1; RFC 8463 for
// k=ed25519) and checks it may sign with algorithm (a=).
func publicKey(ctx context.Context, r dns.Resolver, domain, selector, algorithm string) (crypto.PublicKey, error) {
	txts, _, err := r.LookupTXT(ctx, selector+"._domainkey."+domain)
	if dns.IsTemporary(err) || ctx.Err() != nil {
		return nil, fmt.Errorf("%w: %v", errTemp, err)
	}
	if err != nil || len(txts) != 1 {
		return nil, fmt.Errorf("no key record for %s._domainkey.%s", selector, domain)
	}
	tags := map[string]string{}
	for _, spec := range strings.Split(txts[0], ";") {
		if k, v, ok := strings.Cut(spec, "="); ok {
			tags[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if v, ok := tags["v"]; ok && v != "DKIM1" {
		return nil, fmt.Errorf("key record version %q", v)
	}
	p := stripFWS(tags["p"])
	if p == "" {
		return nil, fmt.Errorf("key revoked or missing")
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return nil, fmt.Errorf("key record: %w", err)
	}
	keyType, _, _ := strings.Cut(algorithm, "-")
	if k := tags["k"]; k != "" && k != keyType || k == "" && keyType != "rsa" {
		return nil, fmt.Errorf("key type %q does not fit a=%s", tags["k"], algorithm)
	}
	if keyType == "ed25519" {
		if len(der) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("bad ed25519 key")
		}
		return ed25519.PublicKey(der), nil
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		// RFC 6376 errata 3017: some publish the bare RSAPublicKey.
		if pk, err2 := x509.ParsePKCS1PublicKey(der); err2 == nil {
			pub = pk
		} else {
			return nil, fmt.Errorf("key record: %w", err)
		}
	}
	rk, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("key is not RSA")
	}
	if rk.N.BitLen() < minRSABits {
		return nil, fmt.Errorf("RSA key of %d bits is too short", rk.N.BitLen())
	}
	return rk, nil
}

// verifySig checks sig over the SHA-256 hash with the key (RSA PKCS #1 v1.5, or Ed25519 over the hash as RFC 8463 3).
func verifySig(pub crypto.PublicKey, hashed, sig []byte) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, hashed, sig)
	case ed25519.PublicKey:
		if !ed25519.Verify(k, hashed, sig) {
			return errors.New("ed25519 signature does not verify")
		}
		return nil
	}
	return errors.New("unsupported key")
}
