package arc

import (
	"bufio"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/authres"
)

// DefaultSealHeaders are the fields an ARC-Message-Signature signs when SealOptions.Headers is empty: the ones RFC
// 6376 5.4.1 recommends for DKIM.
var DefaultSealHeaders = []string{"from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to",
	"references", "mime-version", "content-type", "content-transfer-encoding", "list-id"}

// SealOptions configure Seal.
type SealOptions struct {
	Domain, Selector string        // d= and s=: the key is published at Selector._domainkey.Domain
	Signer           crypto.Signer // RSA (rsa-sha256) or Ed25519 (ed25519-sha256)
	// AuthServID is this server's authserv-id: its Authentication-Results fields in the message become the
	// ARC-Authentication-Results (RFC 8617 4.1.1).
	AuthServID string
	Headers    []string  // fields the ARC-Message-Signature signs; default DefaultSealHeaders
	Time       time.Time // t=; zero: now
	// ChainValidation is the arc result of the message as it arrived (Check.Validate): none, pass or fail. It
	// becomes cv= (RFC 8617 4.1.3).
	ChainValidation authres.ResultValue
}

// Seal returns the ARC set a forwarder adds to message r (RFC 8617 5.1): the ARC-Seal, ARC-Message-Signature and
// ARC-Authentication-Results fields, CRLF-terminated, to put on top of the message unchanged otherwise. It returns
// "" when the chain must not grow: its newest seal already says cv=fail, it is malformed, or it has 50 sets.
func Seal(r io.Reader, o SealOptions) (string, error) {
	alg, err := algorithm(o.Signer)
	if err != nil {
		return "", err
	}
	if o.Time.IsZero() {
		o.Time = time.Now()
	}
	if len(o.Headers) == 0 {
		o.Headers = DefaultSealHeaders
	}
	br := bufio.NewReaderSize(r, 64<<10)
	fields, err := readHeader(br)
	if err != nil {
		return "", fmt.Errorf("arc: seal: %w", err)
	}
	sets, err := collect(fields)
	if err != nil {
		return "", nil // a malformed chain is not extended
	}
	n := len(sets) - 1
	if n >= maxInstances || n > 0 && sets[n].asTags["cv"] == "fail" {
		return "", nil
	}
	i := n + 1
	cv := "none"
	if n > 0 {
		cv = "pass"
		if o.ChainValidation != authres.ResultPass {
			cv = "fail"
		}
	}
	t := strconv.FormatInt(o.Time.Unix(), 10)
	aar := field{Name: "ARC-Authentication-Results", Raw: "ARC-Authentication-Results: " +
		fmt.Sprintf("i=%d; %s", i, consolidate(fields, o.AuthServID)) + "\r\n"}

	// The ARC-Message-Signature: a DKIM signature with i= the instance (RFC 8617 4.1.2), relaxed/relaxed.
	bh := sha256.New()
	if err := canonBody(bh, br, true); err != nil {
		return "", fmt.Errorf("arc: seal: read body: %w", err)
	}
	amsValue := fmt.Sprintf("a=%s; b=; bh=%s; c=relaxed/relaxed; d=%s; h=%s; i=%d; s=%s; t=%s", alg,
		base64.StdEncoding.EncodeToString(bh.Sum(nil)), o.Domain, strings.Join(o.Headers, ":"), i, o.Selector, t)
	ams := &field{Name: "ARC-Message-Signature", Raw: "ARC-Message-Signature: " + amsValue + "\r\n"}
	sig, err := sign(o.Signer, headerHash(fields, o.Headers, ams, true))
	if err != nil {
		return "", err
	}
	ams.Raw = "ARC-Message-Signature: " + strings.Replace(amsValue, "b=;", "b="+sig+";", 1) + "\r\n"

	// The ARC-Seal over every set, oldest first, this one last with b= empty (RFC 8617 5.1.1). A seal that
	// records cv=fail covers only its own set: the older ones did not validate, so there is nothing to vouch for.
	asValue := fmt.Sprintf("a=%s; b=; cv=%s; d=%s; i=%d; s=%s; t=%s", alg, cv, o.Domain, i, o.Selector, t)
	h := sha256.New()
	for j := 1; j <= n && cv != "fail"; j++ {
		for _, f := range []*field{sets[j].aar, sets[j].ams, sets[j].as} {
			h.Write([]byte(canonHeader(f.Raw, true)))
		}
	}
	h.Write([]byte(canonHeader(aar.Raw, true)))
	h.Write([]byte(canonHeader(ams.Raw, true)))
	h.Write([]byte(strings.TrimSuffix(canonHeader("ARC-Seal: "+asValue+"\r\n", true), "\r\n")))
	if sig, err = sign(o.Signer, h.Sum(nil)); err != nil {
		return "", err
	}
	as := "ARC-Seal: " + strings.Replace(asValue, "b=;", "b="+sig+";", 1) + "\r\n"
	return fold(as) + fold(ams.Raw) + fold(aar.Raw), nil
}

func algorithm(s crypto.Signer) (string, error) {
	switch s.(type) {
	case *rsa.PrivateKey:
		return "rsa-sha256", nil
	case ed25519.PrivateKey:
		return "ed25519-sha256", nil
	}
	return "", fmt.Errorf("arc: unsupported key type %T", s)
}

func sign(s crypto.Signer, hashed []byte) (string, error) {
	var opts crypto.SignerOpts = crypto.SHA256
	if _, ok := s.(ed25519.PrivateKey); ok {
		opts = crypto.Hash(0) // RFC 8463 3: Ed25519 signs the SHA-256 hash as its message
	}
	sig, err := s.Sign(rand.Reader, hashed, opts)
	if err != nil {
		return "", fmt.Errorf("arc: sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// consolidate gathers this server's Authentication-Results (authserv-id id) into the AAR value: the id, then
// each result, in order, separated by "; " ("none" when there is none).
func consolidate(fields []field, id string) string {
	var results []string
	for _, f := range fields {
		if !strings.EqualFold(f.Name, "Authentication-Results") {
			continue
		}
		v := strings.Join(strings.Fields(f.value()), " ")
		head, rest, _ := strings.Cut(v, ";")
		if !strings.EqualFold(strings.TrimSpace(head), id) {
			continue
		}
		for _, r := range strings.Split(rest, ";") {
			if r = strings.TrimSpace(r); r != "" {
				results = append(results, r)
			}
		}
	}
	if len(results) == 0 {
		results = []string{"none"}
	}
	return id + "; " + strings.Join(results, "; ")
}

// fold breaks a generated field at "; " boundaries so no line passes 78 characters where it can be helped (RFC 5322
// 2.1.1). Only the space after a ";" becomes CRLF TAB, which relaxed canonicalization turns back into one space, so
// the signatures computed on the unfolded text stay valid.
func fold(raw string) string {
	raw = strings.TrimSuffix(raw, "\r\n")
	parts := strings.Split(raw, "; ")
	var b strings.Builder
	line := 0
	for k, p := range parts {
		if k > 0 {
			if line+2+len(p) > 78 {
				b.WriteString(";\r\n\t")
				line = 8
			} else {
				b.WriteString("; ")
				line += 2
			}
		}
		b.WriteString(p)
		line += len(p)
	}
	return b.String() + "\r\n"
}
