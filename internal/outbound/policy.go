package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/outbound/dane"
	"github.com/postern/postern/internal/outbound/mtasts"
)

// PolicySource finds the MTA-STS policy of a recipient domain (implemented by *mtasts.Cache); nil means none.
type PolicySource interface {
	Get(ctx context.Context, domain string) *mtasts.Policy
}

// level is how much TLS a hop requires.
type level int

const (
	// levelMay: opportunistic TLS (RFC 7435): STARTTLS when offered, any certificate, plain text when TLS fails.
	levelMay level = iota
	// levelEncrypt: TLS required, the certificate is not checked (RFC 7672 2.2: secure TLSA records exist but
	// none is usable).
	levelEncrypt
	// levelVerify: TLS required with a certificate that PKIX-verifies for the host name (relay host, MTA-STS
	// enforce, REQUIRETLS).
	levelVerify
	// levelDANE: TLS required with a certificate matching a usable TLSA record (RFC 7672 2.2).
	levelDANE
)

// tlsPolicy is what one hop requires of TLS, and why.
type tlsPolicy struct {
	level level
	// source names the rule in force for the log: "dane", "dane-unusable", "mta-sts", "mta-sts-testing",
	// "relay", "requiretls"; "" for opportunistic TLS.
	source     string
	tlsa       []dns.TLSA // usable records, at levelDANE
	requireTLS bool       // the message carries REQUIRETLS: failing the policy bounces (RFC 8689 5)
}

// key tells sessions apart in the connection cache: one is reused only under the same requirement.
func (p tlsPolicy) key() string { return fmt.Sprintf("%d/%s", p.level, p.source) }

// hostPolicy decides the TLS requirement for MX (or transport) host h, whose addresses were looked up securely
// when addrSecure, given the recipient domain's MTA-STS policy sts (nil: none). A *hostError means the host must
// not be used at all.
//
// DANE comes first (RFC 8461 2: MTA-STS must not override a failing DANE validation): TLSA records are looked up
// when the host's address records are DNSSEC-secure (RFC 7672 2.2.2) and count only with the AD bit.
func (c *Client) hostPolicy(ctx context.Context, h hop, addrSecure bool, sts *mtasts.Policy, domain string, requireTLS bool) (tlsPolicy, *hostError) {
	if h.relay {
		return tlsPolicy{level: levelVerify, source: "relay", requireTLS: requireTLS}, nil
	}
	p := tlsPolicy{requireTLS: requireTLS}
	if h.mx && addrSecure && !c.opts.DisableDANE {
		recs, res, err := c.opts.Resolver.LookupTLSA(ctx, h.port, h.host)
		switch {
		case err == nil && res.Authentic:
			if p.tlsa = dane.Usable(recs); len(p.tlsa) > 0 {
				p.level, p.source = levelDANE, "dane"
			} else {
				p.level, p.source = levelEncrypt, "dane-unusable"
			}
		case err == nil, errors.Is(err, dns.ErrNotFound), errors.Is(err, dns.ErrNoData):
			// Insecure TLSA records are ignored (RFC 7672 2.2); none at all: no DANE.
		default:
			// RFC 7672 2.2.3: a failed TLSA lookup of a secure host must not turn into plain text delivery.
			return p, &hostError{failure: failure{451, "4.7.5", "TLSA lookup of " + h.host + " failed: " + err.Error()}}
		}
	}
	if p.level != levelDANE && sts != nil {
		switch sts.Mode {
		case mtasts.ModeEnforce:
			// RFC 8461 4.1: in enforce mode an MX host that matches no pattern is not used.
			if !sts.Match(h.host) {
				return p, &hostError{failure: failure{451, "4.7.0", "MX host " + h.host + " is not in the MTA-STS policy of " + domain}}
			}
			p.level, p.source = levelVerify, "mta-sts"
		case mtasts.ModeTesting:
			if p.level == levelMay {
				p.source = "mta-sts-testing"
			}
		}
	}
	if requireTLS {
		// RFC 8689 5: the MX must come from a DNSSEC-secure lookup or match an MTA-STS policy.
		if h.mx && !h.secure && (sts == nil || !sts.Match(h.host)) {
			return p, &hostError{failure: failure{550, "5.7.30", "REQUIRETLS: MX host " + h.host + " is neither DNSSEC-secure nor in an MTA-STS policy"}}
		}
		if p.level < levelVerify {
			p.level, p.source = levelVerify, "requiretls"
		}
	}
	return p, nil
}

// tlsFailure is the failure for a host that cannot meet pol: temporary (the queue retries, RFC 7672 2.2 and
// RFC 8461 5), except that REQUIRETLS messages are returned (RFC 8689 5: 5.7.30).
func tlsFailure(pol tlsPolicy, enhanced, text, remote string) *hostError {
	if pol.requireTLS {
		return &hostError{failure: failure{550, "5.7.30", text + " (REQUIRETLS)"}, remote: remote}
	}
	return &hostError{failure: failure{451, enhanced, text + " (required by " + pol.source + ")"}, remote: remote}
}

// tlsOutcome is what a handshake established about the server's certificate.
type tlsOutcome struct {
	verified string // "dane", "pkix" or "none"
	problem  error  // why it did not verify (logged under MTA-STS testing)
}

// tlsConfig returns the client config for hop h under pol. Certificates are always checked in VerifyConnection
// (with the stock verification off) so that the outcome is known and logged at every level, and fails the
// handshake only where pol requires it.
func (c *Client) tlsConfig(h hop, pol tlsPolicy, out *tlsOutcome) *tls.Config {
	cfg := c.opts.TLSConfig.Clone()
	cfg.ServerName = h.host
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	roots := cfg.RootCAs
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		out.verified, out.problem = "none", nil
		if pol.level == levelDANE {
			if _, err := dane.Verify(cs.PeerCertificates, pol.tlsa, []string{h.host}, time.Now()); err != nil {
				out.problem = err
				return err
			}
			out.verified = "dane"
			return nil
		}
		if err := verifyPKIX(cs.PeerCertificates, h.host, roots); err != nil {
			out.problem = err
			if pol.level >= levelVerify {
				return err
			}
			return nil
		}
		out.verified = "pkix"
		return nil
	}
	return cfg
}

// verifyPKIX checks chain (leaf first) against roots (nil: the system's) for host (RFC 6125 via crypto/x509).
func verifyPKIX(chain []*x509.Certificate, host string, roots *x509.CertPool) error {
	if len(chain) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{DNSName: strings.TrimSuffix(host, "."), Roots: roots, Intermediates: inter})
	return err
}

// detail is the TLS summary for the mail log: "tls=TLSv1.3 verified=dane", "tls=TLSv1.2 verified=pkix
// policy=mta-sts"; "" without TLS.
func (s *session) detail() string {
	if s.tls == "" {
		return ""
	}
	// "TLSv1.3" as Postfix logs it: one word, where tls.VersionName says "TLS 1.3".
	d := "tls=" + strings.Replace(s.tls, "TLS 1.", "TLSv1.", 1) + " verified=" + s.out.verified
	if s.pol.source != "" && s.pol.source != s.out.verified {
		d += " policy=" + s.pol.source
	}
	return d
}
