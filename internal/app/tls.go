package app

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/tlsmgr"
)

// TLSOptions are the certificate manager's options under cfg's [tls] (and [auth] client_ca_file, which makes
// the server ask clients for a certificate). `postern serve`, `check` and `init` use the same.
func TLSOptions(cfg *config.Config, log *slog.Logger) (tlsmgr.Options, error) {
	minTLS, err := cfg.TLS.Version()
	if err != nil {
		return tlsmgr.Options{}, err
	}
	o := tlsmgr.Options{
		CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, DataDir: cfg.DataDir, Hostname: cfg.Hostname,
		Names: cfg.TLS.Names, MinVersion: minTLS, AllowInsecureVersions: cfg.TLS.AllowInsecureVersions,
		RequestClientCert: cfg.Auth.ClientCAFile != "", // for SASL EXTERNAL
		CheckInterval:     config.MustDuration(cfg.TLS.CheckInterval),
		Logger:            log,
	}
	for _, p := range cfg.TLS.Certificates {
		o.Certificates = append(o.Certificates, tlsmgr.CertPair{CertFile: p.CertFile, KeyFile: p.KeyFile})
	}
	if a := cfg.TLS.ACME; a.Directory != "" {
		o.ACME = &tlsmgr.ACMEOptions{Directory: a.Directory, Email: a.Email, Challenge: a.Challenge,
			RenewBefore: config.MustDuration(a.RenewBefore)}
		if a.CAFile != "" {
			pem, err := os.ReadFile(a.CAFile)
			if err != nil {
				return tlsmgr.Options{}, fmt.Errorf("tls.acme.ca_file: %w", err)
			}
			o.ACME.RootCAs = x509.NewCertPool()
			if !o.ACME.RootCAs.AppendCertsFromPEM(pem) {
				return tlsmgr.Options{}, fmt.Errorf("tls.acme.ca_file: %s holds no PEM certificate", a.CAFile)
			}
		}
	}
	return o, nil
}

// buildHTTP opens listen.http for ACME's http-01 challenge (RFC 8555 8.3) when ACME uses it. There is no web
// server yet; every other request gets 404. The web package will mount itself as the fallback handler.
func (a *App) buildHTTP(cfg *config.Config) error {
	if cfg.TLS.ACME.Directory == "" || cfg.TLS.ACME.Challenge != tlsmgr.ChallengeHTTP01 || len(cfg.Listen.HTTP) == 0 {
		return nil
	}
	srv := &http.Server{Handler: a.tls.HTTPHandler(nil), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	svc := service{name: "http", server: srv, serve: func(ln net.Listener) error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}}
	for _, addr := range cfg.Listen.HTTP {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll(svc.listeners)
			return fmt.Errorf("listen http on %s: %w", addr, err)
		}
		svc.listeners = append(svc.listeners, ln)
	}
	a.services = append(a.services, svc)
	return nil
}
