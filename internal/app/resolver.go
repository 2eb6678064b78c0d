package app

import (
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dns"
)

// dnsClient returns the DNS client of [dns], made on first use, so that the inbound checks (SPF, DKIM, DMARC, ARC,
// DNSBL) and outbound delivery (MX, addresses, TLSA, MTA-STS) share one answer cache of dns.cache_size entries.
// New calls it while building, before anything runs concurrently.
func (a *App) dnsClient(cfg *config.Config) (*dns.Client, error) {
	if a.resolver != nil {
		return a.resolver, nil
	}
	c, err := dns.NewClient(dns.ClientOptions{Server: cfg.DNS.Resolver, CacheSize: cfg.DNS.CacheSize})
	if err != nil {
		return nil, err
	}
	a.resolver = c
	return c, nil
}
