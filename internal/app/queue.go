package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dkim"
	"github.com/postern/postern/internal/outbound"
	"github.com/postern/postern/internal/outbound/mtasts"
	"github.com/postern/postern/internal/queue"
)

// buildQueue creates the outbound side: the DNS client (dns.resolver), the SMTP client with its relay, transport
// map, DKIM signer, MTA-STS cache, DANE and connection cache, and the queue scheduler that drives it. Start runs
// the scheduler; Shutdown stops it before the store closes.
func (a *App) buildQueue(cfg *config.Config) error {
	res, err := a.dnsClient(cfg)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	d := cfg.Delivery
	caFile := d.CAFile
	if caFile != "" && !filepath.IsAbs(caFile) && cfg.Path != "" {
		caFile = filepath.Join(filepath.Dir(cfg.Path), caFile) // relative to the config file, like data_dir
	}
	roots, err := remoteRoots(caFile)
	if err != nil {
		return err
	}
	reuse := config.MustDuration(d.ConnectionCacheTime)
	if reuse == 0 {
		reuse = -1 // "0" in the config: no connection reuse
	}
	o := outbound.Options{
		Hostname: cfg.Hostname, Resolver: res, Port: d.RemotePort, Transports: d.Transport,
		TLSConfig: &tls.Config{RootCAs: roots}, DisableDANE: !d.DANE, ReuseIdle: reuse, ReuseMax: d.ConnectionReuseLimit,
		Logger: a.log.With("service", "outbound"),
	}
	if d.MTASTS {
		o.MTASTS, err = mtasts.New(mtasts.Options{Resolver: res, RootCAs: roots, Port: d.MTASTSPort, Logger: a.log.With("service", "mta-sts")})
		if err != nil {
			return err
		}
	}
	if d.DKIM {
		o.Signer = &dkim.Signer{Keys: dkim.Keys{Dir: filepath.Join(cfg.DataDir, "dkim")}}
	}
	if d.RelayHost != "" {
		o.Relay = &outbound.Relay{Addr: d.RelayHost, Username: d.RelayUser, Password: d.RelayPassword, ImplicitTLS: d.RelayTLS == "implicit"}
	}
	client, err := outbound.New(o)
	if err != nil {
		return err
	}
	warn := config.MustDuration(d.WarningDelay)
	if warn == 0 {
		warn = -1 // "0" in the config: never warn
	}
	a.queue, err = queue.New(queue.Options{
		Store: a.store, Transport: client, Directory: a.dir, Hostname: cfg.Hostname, MailLog: a.mailLog,
		Logger: a.log.With("service", "queue"), Workers: d.Workers, Expiry: config.MustDuration(d.Expiry), WarnAfter: warn,
	})
	a.outbound = client
	return err
}

// remoteRoots returns the trust anchors for remote servers: the system's plus those of delivery.ca_file; nil
// (the system's, loaded by crypto/tls) when no file is given.
func remoteRoots(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("delivery.ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("delivery.ca_file: no certificate in %s", file)
	}
	return pool, nil
}

// startQueue runs the scheduler as a background job: Shutdown cancels ctx and waits for it. The outbound
// client's idle connections are closed (QUIT) once the scheduler has stopped.
func (a *App) startQueue(ctx context.Context) {
	if a.queue == nil {
		return
	}
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		a.queue.Run(ctx)
		if a.outbound != nil {
			a.outbound.Close()
		}
	}()
}
