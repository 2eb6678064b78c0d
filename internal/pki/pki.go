// Package pki is the built-in certificate authority: what the seeds did by hand with openssl (genrsa, req -x509
// for the CA, then req + ca/x509 -req to sign the server certificate) done for the admin: create a CA once, issue
// server certificates for the mail host names.
//
// Keys are ECDSA P-256: every TLS client of the last decade (and every MUA and MTA we test against) supports it,
// signing and handshakes are much cheaper than with RSA 2048 at comparable strength (about 128 bits), keys and
// certificates are small, and key generation takes milliseconds instead of the seconds RSA needs at `postern init`.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names inside the CA directory.
const (
	CertFileName = "ca.crt"
	KeyFileName  = "ca.key"
)

// Defaults for zero options.
const (
	DefaultCommonName = "Postern CA"
	DefaultCAValidity = 10 * 365 * 24 * time.Hour
	// DefaultLeafValidity is the longest lifetime Apple clients accept for a server certificate.
	DefaultLeafValidity = 825 * 24 * time.Hour
)

// CAOptions configure InitCA. The zero value works.
type CAOptions struct {
	CommonName string        // default DefaultCommonName
	Validity   time.Duration // default DefaultCAValidity
}

// CA is a loaded certificate authority.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
}

// InitCA loads the CA in dir, first creating dir (0700), dir/ca.key (0600) and dir/ca.crt when they do not exist.
// It is idempotent: an existing CA is loaded, never replaced (clients trust it). A key without its certificate is
// an error rather than a reason to overwrite the key.
func InitCA(dir string, o CAOptions) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CertFileName), filepath.Join(dir, KeyFileName)
	if _, err := os.Stat(certPath); err == nil {
		return LoadCA(dir)
	}
	if _, err := os.Stat(keyPath); err == nil {
		return nil, fmt.Errorf("init CA: %s exists without %s; move it away or restore the certificate", keyPath, certPath)
	}
	if o.CommonName == "" {
		o.CommonName = DefaultCommonName
	}
	if o.Validity <= 0 {
		o.Validity = DefaultCAValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("init CA: generate key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: o.CommonName, Organization: []string{"Postern"}},
		NotBefore:             now.Add(-time.Hour), // tolerate clients whose clock is a little behind
		NotAfter:              now.Add(o.Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // signs leaves only, never intermediates
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("init CA: create certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	// The key first: a crash between the two writes leaves a key without a certificate, which InitCA reports,
	// rather than a certificate whose key is lost.
	if err := WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	if err := WriteFile(certPath, encodeCert(der), 0o644); err != nil {
		return nil, fmt.Errorf("init CA: %w", err)
	}
	return LoadCA(dir)
}

// LoadCA loads dir/ca.crt and dir/ca.key and checks that they belong together.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CertFileName))
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, KeyFileName))
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("load CA: %s holds no PEM certificate", filepath.Join(dir, CertFileName))
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("load CA: %s holds no PEM key", filepath.Join(dir, KeyFileName))
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load CA certificate: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load CA key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("load CA key: %T is not an ECDSA key", k)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("load CA: ca.key does not match ca.crt")
	}
	if !cert.IsCA {
		return nil, errors.New("load CA: ca.crt is not a CA certificate")
	}
	return &CA{cert: cert, certPEM: encodeCert(cert.Raw), key: key}, nil
}

// CertPEM returns the CA certificate in PEM, for clients to trust.
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// Certificate returns the parsed CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Issue creates a server certificate (serverAuth) for hosts: DNS names become DNS SANs, IP addresses IP SANs; the
// first host is also the subject CN for old clients. validity 0 means DefaultLeafValidity; it never extends past
// the CA's own expiry. certPEM holds the leaf followed by the CA certificate, the chain servers send.
func (ca *CA) Issue(hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("issue: no host names")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if err := addSAN(tmpl, h); err != nil {
			return nil, nil, fmt.Errorf("issue: %w", err)
		}
	}
	return ca.sign(tmpl, validity)
}

// IssueClient creates a TLS client certificate (clientAuth) for a mail user: the address is the subject CN and
// an rfc822Name SAN, which is what SASL EXTERNAL maps to the user (RFC 5280 4.2.1.6). validity 0 means
// DefaultLeafValidity.
func (ca *CA) IssueClient(address string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	at := strings.LastIndexByte(address, '@')
	if at <= 0 || at == len(address)-1 || strings.ContainsAny(address, " \t\r\n<>") {
		return nil, nil, fmt.Errorf("issue client certificate: %q is not an address", address)
	}
	tmpl := &x509.Certificate{
		Subject:        pkix.Name{CommonName: address},
		EmailAddresses: []string{address},
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return ca.sign(tmpl, validity)
}

// sign completes tmpl (serial, validity within the CA's, key usage), signs a fresh P-256 key into it, and returns
// the leaf followed by the CA certificate, and the key.
func (ca *CA) sign(tmpl *x509.Certificate, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if validity <= 0 {
		validity = DefaultLeafValidity
	}
	now := time.Now()
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(validity)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issue: generate key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue: %w", err)
	}
	return append(encodeCert(der), ca.certPEM...), keyPEM, nil
}

// addSAN adds h to the subject alternative names of tmpl as an IP address or a DNS name.
func addSAN(tmpl *x509.Certificate, h string) error {
	if ip := net.ParseIP(h); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(h, "."))
	if !validDNSName(name) {
		return fmt.Errorf("%q is not a host name or IP address", h)
	}
	tmpl.DNSNames = append(tmpl.DNSNames, name)
	return nil
}

// validDNSName accepts LDH labels (and one leading "*." wildcard label), each 1-63 octets, 253 in all.
func validDNSName(name string) bool {
	name = strings.TrimPrefix(name, "*.")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// serial returns a random 127-bit serial number (RFC 5280 4.1.2.2: positive, at most 20 octets; random so two
// certificates issued by two CAs made on the same day never collide in a client's cache).
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil || n.Sign() == 0 {
		// crypto/rand never fails on supported platforms (Go 1.24+ crashes instead); keep the result positive.
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}
