// Package dkim keeps the per-domain DKIM keys (RSA-2048 and Ed25519, RFC 6376 and RFC 8463) under
// data_dir/dkim/DOMAIN/, prints the DNS records that publish them, and signs outgoing mail with every key of the
// From: domain (RFC 8463 8: sign with both so verifiers that know only RSA still see a valid signature).
//
// `postern dns records DOMAIN` creates the keys; the running server reads them from disk for each message, so new
// keys take effect without a restart.
package dkim

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/mail"
	"os"
	"path/filepath"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// Key algorithms and their selectors. The selector names the key in DNS: SELECTOR._domainkey.DOMAIN.
const (
	AlgRSA     = "rsa"
	AlgEd25519 = "ed25519"

	SelectorRSA     = "postern-rsa"
	SelectorEd25519 = "postern-ed25519"
)

// Key is one signing key of a domain.
type Key struct {
	Domain   string
	Selector string
	Alg      string // AlgRSA or AlgEd25519
	Signer   crypto.Signer
}

// Record returns the DNS TXT record name and value that publish k (RFC 6376 3.6.1; RFC 8463 4.2: an Ed25519
// p= is the raw 32-byte key, not SubjectPublicKeyInfo).
func (k Key) Record() (name, value string, err error) {
	var p []byte
	switch pub := k.Signer.Public().(type) {
	case *rsa.PublicKey:
		if p, err = x509.MarshalPKIXPublicKey(pub); err != nil {
			return "", "", err
		}
	case ed25519.PublicKey:
		p = pub
	default:
		return "", "", fmt.Errorf("dkim: unsupported key type %T", pub)
	}
	return k.Selector + "._domainkey." + k.Domain, "v=DKIM1; k=" + k.Alg + "; p=" + base64.StdEncoding.EncodeToString(p), nil
}

// Keys reads and creates key files under one directory (data_dir/dkim).
type Keys struct {
	Dir string
}

func (s Keys) path(domain, selector string) string {
	return filepath.Join(s.Dir, strings.ToLower(domain), selector+".pem")
}

// Ensure creates the RSA-2048 and Ed25519 keys of domain when missing and returns every key of domain.
func (s Keys) Ensure(domain string) ([]Key, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if domain == "" || strings.ContainsAny(domain, `/\`) || strings.HasPrefix(domain, ".") {
		return nil, fmt.Errorf("dkim: %q is not a domain", domain)
	}
	for _, k := range []struct{ sel, alg string }{{SelectorRSA, AlgRSA}, {SelectorEd25519, AlgEd25519}} {
		path := s.path(domain, k.sel)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		if err := writeKey(path, k.alg); err != nil {
			return nil, err
		}
	}
	return s.Load(domain)
}

// writeKey generates a key and writes it as PKCS #8 PEM, durably and readable by the owner only.
func writeKey(path, alg string) error {
	var key crypto.Signer
	var err error
	switch alg {
	case AlgRSA:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case AlgEd25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		return fmt.Errorf("dkim: generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("dkim: %w", err)
	}
	return writeFileSync(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// writeFileSync writes a temp file in the same directory (otherwise Rename is not atomic), fsyncs it, renames it
// and fsyncs the directory.
func writeFileSync(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return fmt.Errorf("dkim: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("dkim: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("dkim: %w", err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Load returns the keys of domain (none, without error, when it has none).
func (s Keys) Load(domain string) ([]Key, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	var out []Key
	for _, k := range []struct{ sel, alg string }{{SelectorRSA, AlgRSA}, {SelectorEd25519, AlgEd25519}} {
		b, err := os.ReadFile(s.path(domain, k.sel))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("dkim: %w", err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("dkim: %s: no PEM block", s.path(domain, k.sel))
		}
		key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("dkim: %s: %w", s.path(domain, k.sel), err)
		}
		sg, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("dkim: %s: not a signing key", s.path(domain, k.sel))
		}
		out = append(out, Key{Domain: domain, Selector: k.sel, Alg: k.alg, Signer: sg})
	}
	return out, nil
}

// signedHeaders are the fields RFC 6376 5.4.1 recommends signing. From is listed twice ("oversigning"), so a
// second From added in transit breaks the signature instead of going unnoticed.
var signedHeaders = []string{"From", "From", "Reply-To", "Subject", "Date", "To", "Cc", "In-Reply-To", "References",
	"Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "List-Id", "List-Unsubscribe"}

// Signer signs messages with the keys of their From: domain.
type Signer struct {
	Keys Keys
}

// Sign reads the whole message and returns the DKIM-Signature fields to put in front of it, one per key of the
// From: domain; "" when the domain has no keys or the message has no usable From.
func (s *Signer) Sign(ctx context.Context, r io.Reader) (string, error) {
	br := bufio.NewReader(r)
	domain, head, err := fromDomain(br)
	if err != nil || domain == "" {
		io.Copy(io.Discard, br)
		return "", nil // nothing to sign with; sending unsigned is not an error
	}
	keys, err := s.Keys.Load(domain)
	if err != nil || len(keys) == 0 {
		io.Copy(io.Discard, br)
		return "", err
	}
	signers := make([]*dkim.Signer, 0, len(keys))
	ws := make([]io.Writer, 0, len(keys))
	for _, k := range keys {
		sg, err := dkim.NewSigner(&dkim.SignOptions{
			Domain: k.Domain, Selector: k.Selector, Signer: k.Signer, HeaderKeys: signedHeaders,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		})
		if err != nil {
			return "", fmt.Errorf("dkim: %w", err)
		}
		signers = append(signers, sg)
		ws = append(ws, sg)
	}
	if _, err := io.Copy(io.MultiWriter(ws...), io.MultiReader(strings.NewReader(head), br)); err != nil {
		return "", fmt.Errorf("dkim: read message: %w", err)
	}
	var out strings.Builder
	for _, sg := range signers {
		if err := sg.Close(); err != nil {
			return "", fmt.Errorf("dkim: sign: %w", err)
		}
		out.WriteString(sg.Signature())
	}
	return out.String(), ctx.Err()
}

// fromDomain reads the header block and returns the domain of its From: address, with the bytes it read.
func fromDomain(br *bufio.Reader) (string, string, error) {
	var head strings.Builder
	for head.Len() < 1<<20 {
		line, err := br.ReadString('\n')
		head.WriteString(line)
		if err != nil || line == "\r\n" || line == "\n" {
			break
		}
	}
	msg, err := mail.ReadMessage(strings.NewReader(head.String()))
	if err != nil {
		return "", head.String(), err
	}
	addrs, err := msg.Header.AddressList("From")
	if err != nil || len(addrs) != 1 {
		return "", head.String(), err
	}
	at := strings.LastIndexByte(addrs[0].Address, '@')
	if at < 0 {
		return "", head.String(), nil
	}
	return strings.ToLower(addrs[0].Address[at+1:]), head.String(), nil
}
