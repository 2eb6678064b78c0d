package app

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dkim"
	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/outbound"
	"github.com/postern/postern/internal/queue"
)

// buildQueue creates the outbound side: the DNS client (dns.resolver), the SMTP client with its relay, transport
// map and DKIM signer, and the queue scheduler that drives it. Start runs the scheduler; Shutdown stops it
// before the store closes.
func (a *App) buildQueue(cfg *config.Config) error {
	res, err := dns.NewClient(dns.ClientOptions{Server: cfg.DNS.Resolver})
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	d := cfg.Delivery
	o := outbound.Options{
		Hostname: cfg.Hostname, Resolver: res, Port: d.RemotePort, Transports: d.Transport,
		Logger: a.log.With("service", "outbound"),
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
	return err
}

// startQueue runs the scheduler as a background job: Shutdown cancels ctx and waits for it.
func (a *App) startQueue(ctx context.Context) {
	if a.queue == nil {
		return
	}
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		a.queue.Run(ctx)
	}()
}
