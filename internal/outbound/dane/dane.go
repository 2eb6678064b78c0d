// Package dane authenticates an SMTP server's certificate chain with DNSSEC-secured TLSA records, as opportunistic
// DANE TLS for SMTP prescribes (RFC 7672, on RFC 6698 and RFC 7671): only DANE-TA(2) and DANE-EE(3) records are
// usable; PKIX-TA(0) and PKIX-EE(1) records are not (RFC 7672 3.1.3).
package dane

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/postern/postern/internal/dns"
)

// Certificate usages, selectors and matching types (RFC 6698 2.1, RFC 7218 acronyms).
const (
	UsagePKIXTA = 0
	UsagePKIXEE = 1
	UsageDANETA = 2
	UsageDANEEE = 3

	SelectorCert = 0 // the whole certificate
	SelectorSPKI = 1 // its SubjectPublicKeyInfo

	MatchFull   = 0
	MatchSHA256 = 1
	MatchSHA512 = 2
)

// ErrNoMatch: no usable TLSA record matches the server's certificate chain.
var ErrNoMatch = errors.New("dane: no TLSA record matches the certificate chain")

// Usable returns the records an SMTP client may use (RFC 7672 3.1): usage DANE-TA or DANE-EE, selector 0 or
// 1, matching type 0, 1 or 2, with data of the right length for its digest.
func Usable(recs []dns.TLSA) []dns.TLSA {
	var out []dns.TLSA
	for _, r := range recs {
		if r.Usage != UsageDANETA && r.Usage != UsageDANEEE || r.Selector > SelectorSPKI {
			continue
		}
		switch {
		case r.MatchingType == MatchFull && len(r.Data) > 0,
			r.MatchingType == MatchSHA256 && len(r.Data) == sha256.Size,
			r.MatchingType == MatchSHA512 && len(r.Data) == sha512.Size:
			out = append(out, r)
		}
	}
	return out
}

// Verify checks the chain the server presented (leaf first) against recs, returning the record that matched.
//
// DANE-EE(3) matches the leaf alone; its names and validity dates are not checked (RFC 7672 3.1.1: the TLSA
// record is the binding). DANE-TA(2) matches a certificate of the chain other than the leaf, which then serves
// as the only trust anchor: the leaf must chain to it, be valid now and carry one of names (RFC 7672 3.1.2 and
// 3.2.2: the MX host name, or the TLSA base domain). Unusable records are skipped.
func Verify(chain []*x509.Certificate, recs []dns.TLSA, names []string, now time.Time) (dns.TLSA, error) {
	if len(chain) == 0 {
		return dns.TLSA{}, errors.New("dane: the server presented no certificate")
	}
	var taErr error
	for _, r := range Usable(recs) {
		switch r.Usage {
		case UsageDANEEE:
			if Matches(r, chain[0]) {
				return r, nil
			}
		case UsageDANETA:
			for i, ta := range chain[1:] {
				if !Matches(r, ta) {
					continue
				}
				err := verifyTA(chain, i+1, names, now)
				if err == nil {
					return r, nil
				}
				taErr = err
			}
		}
	}
	if taErr != nil {
		return dns.TLSA{}, fmt.Errorf("%w: %v", ErrNoMatch, taErr)
	}
	return dns.TLSA{}, ErrNoMatch
}

// verifyTA checks that chain[0] chains to chain[ta] for one of names.
func verifyTA(chain []*x509.Certificate, ta int, names []string, now time.Time) error {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(chain[ta])
	for _, c := range chain[1:ta] {
		inter.AddCert(c)
	}
	var errs []error
	for _, name := range names {
		_, err := chain[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return errors.New("no name to check")
	}
	return errors.Join(errs...)
}

// Matches reports whether cert matches r's selector, matching type and data (RFC 6698 2.1.2, 2.1.3).
func Matches(r dns.TLSA, cert *x509.Certificate) bool {
	var sel []byte
	switch r.Selector {
	case SelectorCert:
		sel = cert.Raw
	case SelectorSPKI:
		sel = cert.RawSubjectPublicKeyInfo
	default:
		return false
	}
	switch r.MatchingType {
	case MatchFull:
		return bytes.Equal(sel, r.Data)
	case MatchSHA256:
		sum := sha256.Sum256(sel)
		return bytes.Equal(sum[:], r.Data)
	case MatchSHA512:
		sum := sha512.Sum512(sel)
		return bytes.Equal(sum[:], r.Data)
	}
	return false
}

// Record returns the TLSA record of cert with the given parameters: what a server publishes.
func Record(usage, selector, matching uint8, cert *x509.Certificate) dns.TLSA {
	r := dns.TLSA{Usage: usage, Selector: selector, MatchingType: matching}
	data := cert.Raw
	if selector == SelectorSPKI {
		data = cert.RawSubjectPublicKeyInfo
	}
	switch matching {
	case MatchSHA256:
		sum := sha256.Sum256(data)
		data = sum[:]
	case MatchSHA512:
		sum := sha512.Sum512(data)
		data = sum[:]
	}
	r.Data = append([]byte(nil), data...)
	return r
}

// String formats r as in a zone file: "3 1 1 abcd...".
func String(r dns.TLSA) string {
	return fmt.Sprintf("%d %d %d %x", r.Usage, r.Selector, r.MatchingType, r.Data)
}
