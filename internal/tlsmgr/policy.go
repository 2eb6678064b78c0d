package tlsmgr

import (
	"crypto/tls"
	"fmt"
)

// CipherSuites returns the TLS 1.2 cipher suites the server accepts: ephemeral ECDH key exchange (forward
// secrecy) with an AEAD cipher, the set RFC 9325 4.2 recommends and Mozilla's "intermediate" profile uses. With
// insecure (the admin explicitly allowed TLS 1.0/1.1, which have no AEAD suite at all) the ECDHE CBC suites those
// versions need are added. TLS 1.3's suites are all AEAD and not configurable in crypto/tls. Compression and
// renegotiation need no setting: crypto/tls implements neither on the server side (RFC 9325 3.3 and 3.5).
func CipherSuites(insecure bool) []uint16 {
	s := []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	if insecure {
		s = append(s,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		)
	}
	return s
}

// checkVersion refuses a minimum version below TLS 1.2 unless insecure versions are explicitly allowed (RFC 8996
// deprecates TLS 1.0 and 1.1).
func checkVersion(min uint16, insecure bool) error {
	switch {
	case min == 0:
		return nil
	case min < tls.VersionTLS10 || min > tls.VersionTLS13:
		return fmt.Errorf("tls: unknown minimum version %#x", min)
	case min < tls.VersionTLS12 && !insecure:
		return fmt.Errorf("tls: minimum version %s is below TLS 1.2 (RFC 8996); set tls.allow_insecure_versions to allow it",
			tls.VersionName(min))
	}
	return nil
}
