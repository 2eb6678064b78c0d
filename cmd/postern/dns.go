package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postern/postern/internal/admin"
	"github.com/postern/postern/internal/dkim"
)

// dnsRecord is one resource record to publish.
type dnsRecord struct {
	Name, Type, Value string // Value in zone-file syntax (TXT values quoted, split into 255-byte strings)
}

func (c *cli) dnsCmd() *cobra.Command {
	records := &cobra.Command{
		Use:   "records DOMAIN",
		Short: "print the MX, SPF, DKIM, DMARC, MTA-STS and autoconfig records to publish (creates DKIM keys)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			return c.withAdmin(func(ctx context.Context, a *admin.Admin) error {
				domain, err := localDomain(ctx, a, args[0])
				if err != nil {
					return err
				}
				keys, err := dkim.Keys{Dir: filepath.Join(cfg.DataDir, "dkim")}.Ensure(domain)
				if err != nil {
					return err
				}
				recs, policy, err := domainRecords(domain, cfg.Hostname, keys)
				if err != nil {
					return err
				}
				return printRecords(c.stdout, domain, cfg.Hostname, recs, policy)
			})
		},
	}
	return group("dns", "DNS records for local domains", records)
}

// localDomain returns the domain as stored when it is local.
func localDomain(ctx context.Context, a *admin.Admin, name string) (string, error) {
	want := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	ds, err := a.ListDomains(ctx)
	if err != nil {
		return "", err
	}
	for _, d := range ds {
		if d.Name == want {
			return d.Name, nil
		}
	}
	return "", fmt.Errorf("domain %s is not local: run postern domain add %s", want, want)
}

// domainRecords lists what a domain served by host needs in DNS, and the MTA-STS policy file (RFC 8461 3.2) to
// serve at https://mta-sts.DOMAIN/.well-known/mta-sts.txt.
func domainRecords(domain, host string, keys []dkim.Key) ([]dnsRecord, string, error) {
	d, h := domain+".", host+"."
	policy := "version: STSv1\nmode: testing\nmx: " + host + "\nmax_age: 604800\n"
	sum := sha256.Sum256([]byte(policy))
	recs := []dnsRecord{
		{d, "MX", "10 " + h},
		{d, "TXT", quoteTXT("v=spf1 mx -all")}, // RFC 7208
		{"_dmarc." + d, "TXT", quoteTXT("v=DMARC1; p=quarantine; rua=mailto:postmaster@" + domain)}, // RFC 7489
	}
	for _, k := range keys {
		name, value, err := k.Record()
		if err != nil {
			return nil, "", err
		}
		recs = append(recs, dnsRecord{name + ".", "TXT", quoteTXT(value)}) // RFC 6376 3.6.2.2
	}
	recs = append(recs,
		dnsRecord{"_mta-sts." + d, "TXT", quoteTXT("v=STSv1; id=" + hex.EncodeToString(sum[:8]))}, // RFC 8461 3.1
		dnsRecord{"mta-sts." + d, "CNAME", h},
		dnsRecord{"_smtp._tls." + d, "TXT", quoteTXT("v=TLSRPTv1; rua=mailto:postmaster@" + domain)}, // RFC 8460
		dnsRecord{"autoconfig." + d, "CNAME", h},                                                     // Thunderbird autoconfig
		dnsRecord{"_submissions._tcp." + d, "SRV", "0 1 465 " + h},                                   // RFC 6186, RFC 8314
		dnsRecord{"_submission._tcp." + d, "SRV", "0 1 587 " + h},
		dnsRecord{"_imaps._tcp." + d, "SRV", "0 1 993 " + h},
		dnsRecord{"_imap._tcp." + d, "SRV", "0 1 143 " + h},
		dnsRecord{"_pop3s._tcp." + d, "SRV", "0 1 995 " + h},
	)
	return recs, policy, nil
}

// quoteTXT writes a TXT value as zone-file strings of at most 255 bytes (RFC 1035 3.3.14; RFC 6376 3.6.2.2:
// verifiers join them).
func quoteTXT(v string) string {
	var parts []string
	for len(v) > 255 {
		parts = append(parts, `"`+v[:255]+`"`)
		v = v[255:]
	}
	return strings.Join(append(parts, `"`+v+`"`), " ")
}

func printRecords(w io.Writer, domain, host string, recs []dnsRecord, policy string) error {
	fmt.Fprintf(w, "; DNS records for %s, served by %s (zone-file syntax)\n", domain, host)
	for _, r := range recs {
		if _, err := fmt.Fprintf(w, "%-45s 3600 IN %-5s %s\n", r.Name, r.Type, r.Value); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "; %s needs an A/AAAA record; serve this MTA-STS policy at https://mta-sts.%s/.well-known/mta-sts.txt\n", host, domain)
	for _, l := range strings.Split(strings.TrimSpace(policy), "\n") {
		fmt.Fprintf(w, ";   %s\n", l)
	}
	_, err := fmt.Fprintf(w, "; switch mode to enforce once TLS reports (_smtp._tls) show no failures\n")
	return err
}
