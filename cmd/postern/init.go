package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postern/postern/internal/admin"
	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/pki"
	"github.com/postern/postern/internal/store"
	"github.com/postern/postern/internal/tlsmgr"
)

// configTemplate is the commented config `postern init` writes. Every key of config.Config appears with its default
// (a test checks this). %[1]s hostname, %[2]s listen block.
const configTemplate = `# Postern configuration, written by postern init. Every key is listed with its default value; delete a line to
# get the default, and note that an unknown key is an error. Validate with: postern -c THIS_FILE check

hostname = %-15[1]q # HELO/EHLO name, certificate name, Received: headers
data_dir = "data"          # database, message blobs, CA, certificates, mail log; relative to this file

[listen]                   # each a list of "host:port"; [] disables the service
%[2]s
[tls]
cert_file = ""             # PEM chain (leaf first); empty: issued for hostname by the built-in CA (data_dir/ca)
key_file = ""              # PEM key of cert_file; set both or neither. SIGHUP re-reads them
min_version = "1.2"        # "1.2" or "1.3"; "1.0"/"1.1" only with allow_insecure_versions
allow_insecure_versions = false # permit TLS 1.0/1.1 (deprecated by RFC 8996) and the CBC suites they need
names = []                 # more host names clients use (SNI): the built-in CA / ACME issue a certificate for each
certificates = []          # more PEM pairs chosen by SNI: [{ cert_file = "...", key_file = "..." }]
check_interval = "1m"      # how often certificate files are checked for changes (reloaded) and renewals

[tls.acme]                 # certificates from an ACME CA (RFC 8555); off while directory is empty
directory = ""             # e.g. "https://acme-v02.api.letsencrypt.org/directory"
email = ""                 # account contact address
challenge = "http-01"      # "http-01": port 80 must reach listen.http; "tls-alpn-01": port 443 a TLS port
ca_file = ""               # PEM roots to trust for the directory's HTTPS; empty: the system's
renew_before = "30d"       # renew this long before expiry (at most a third of the lifetime)

[auth]
allow_plaintext = false    # true: accept passwords before TLS (closed networks only; loopback is NOT exempt)
lockout_failures = 10      # failed logins from one IP within lockout_window ...
lockout_window = "10m"     # ... (durations: 90s, 10m, 2h, 7d) ...
lockout_duration = "15m"   # ... block authentication from that IP this long
account_lockout_failures = 30 # failures for one account (any IPs) in lockout_window lock it for new IPs; 0: off
failure_delay = "1s"       # a failed login takes this long (from the 3rd in a row: doubling, up to 8x); "0s": none
scram = true               # offer SCRAM-SHA-256/SHA-1 (+ -PLUS over TLS); stores their secrets with each password
scram_iterations = 10000   # PBKDF2 rounds of new SCRAM secrets (RFC 7677: at least 4096)
cram_md5 = false           # offer CRAM-MD5; stores a plaintext-equivalent secret (docs/auth.md explains)
client_ca_file = ""        # PEM CAs whose client certificates log in with SASL EXTERNAL; empty: off

[database]
driver = "sqlite"          # "sqlite" (embedded); "postgres" and "mysql" are planned
dsn = ""                   # empty with sqlite: <data_dir>/postern.db

[dns]
resolver = ""              # "host:port" of the DNS server to use; empty: the system resolver
cache_size = 10000         # DNS answers kept for their TTL (at most 1h; negative ones at most 15m); 0: no cache

[delivery]
remote_port = 25           # port used to reach MX hosts
max_message_size = "50MiB" # SIZE limit; bigger messages get 552 5.3.4
group_commit = true        # concurrent deliveries share one durable commit (faster, equally safe)
expiry = "5d"              # outgoing mail still undelivered this long bounces to its sender
warning_delay = "4h"       # the sender is told once that a message is delayed ("0": never)
workers = 8                # outgoing deliveries at once
relay_host = ""            # "host:port" of a smarthost for all outgoing mail; empty: deliver to MX hosts
relay_user = ""            # AUTH PLAIN user at the relay (sent only over verified TLS)
relay_password = ""        # its password
relay_tls = "starttls"     # "starttls" (port 587/25) or "implicit" (port 465)
transport = {}             # per-domain routes, e.g. { "example.net" = "10.0.0.5:25", ".example.net" = "10.0.0.5" }
dkim = true                # sign outgoing mail with the keys "postern dns records DOMAIN" creates
mta_sts = true             # fetch and enforce recipient domains' MTA-STS policies (RFC 8461)
mta_sts_port = 443         # HTTPS port of mta-sts.<domain> (tests set another)
dane = true                # require TLS matching the MX host's DNSSEC-signed TLSA records (RFC 7672)
ca_file = ""               # PEM of more trust anchors for remote servers (relay, MTA-STS, REQUIRETLS)
connection_cache_time = "5s" # keep a connection open this long for the next message to the same host ("0": off)
connection_reuse_limit = 100 # messages one outgoing connection carries at most

[smtp]
max_recipients = 100       # per message; more get 452 4.5.3
max_connections_per_ip = 20 # concurrent sessions from one client address
max_connections = 1000     # concurrent sessions in all
max_commands = 1000        # per session, before 421
max_errors = 20            # bad commands per session, before 421
read_timeout = "5m"        # idle time before a session is dropped (RFC 5321 4.5.3.2: at least 5 minutes)
shutdown_grace = "10s"     # time sessions in flight get on SIGTERM before they are tempfailed
banner = ""                # text after the hostname in the 220 greeting
mail_log = ""              # one line per message event; "" = <data_dir>/mail.log, "-" = stderr

[imap]
max_connections = 10000    # IMAP sessions in all (clients keep one per watched folder); when full, the longest idle makes room
max_connections_per_ip = 50 # from one client address

[pop3]
max_connections = 1000     # POP3 sessions in all
max_connections_per_ip = 20 # from one client address

[log]
level = "info"             # debug, info, warn, error
format = "text"            # text or json

[antivirus]
clamd = ""                 # "tcp:127.0.0.1:3310" or "unix:/run/clamav/clamd.ctl"; empty: off
on_error = "tempfail"      # when clamd fails: "tempfail" (451) or "accept"
clamd_timeout = "60s"      # one scan
clamd_max_size = "25MiB"   # clamd's StreamMaxLength; larger messages pass unscanned (logged); "0": send all
dangerous_extensions = [".ade", ".adp", ".app", ".appx", ".appxbundle", ".bas", ".bat", ".chm", ".cmd", ".com", ".cpl", ".dll", ".exe", ".hta", ".inf", ".ins", ".img", ".iso", ".isp", ".jar", ".js", ".jse", ".lnk", ".mde", ".msc", ".msi", ".msix", ".msp", ".mst", ".pif", ".ps1", ".psm1", ".reg", ".scf", ".scr", ".sct", ".shb", ".sys", ".url", ".vb", ".vbe", ".vbs", ".vhd", ".vhdx", ".vxd", ".wsc", ".wsf", ".wsh", ".xll"] # attachments refused without clamd; []: off
dangerous_content_types = ["application/x-msdownload", "application/x-msdos-program", "application/x-ms-dos-executable", "application/x-dosexec", "application/vnd.microsoft.portable-executable", "application/x-ms-installer", "application/x-msi", "application/hta", "application/x-ms-shortcut", "application/java-archive", "application/x-java-archive", "application/x-javascript", "application/x-vbscript", "text/vbscript"] # likewise by MIME type; []: off
scan_archives = true       # look at the file names inside zip archives too
reject_encrypted_archives = false # refuse zip archives with encrypted members (nothing can scan them)

[antispam]                 # the MX listener's checks (docs/filters.md)
dnsbl = []                 # DNSBL zones, "zone" or "zone=weight", e.g. ["zen.spamhaus.org"]
dnsbl_reject_weight = 1.0  # listings weighing this much in sum refuse the client (554 at RCPT)
dnsbl_score = 3.0          # a lighter listing adds this spam score per unit of weight
spamd = ""                 # "host:port" of SpamAssassin's spamd; empty: off
rspamd = ""                # base URL of rspamd; empty: off
milter = []                # "tcp:host:port" or "unix:/path"
on_error = "accept"        # when spamd, rspamd or a milter fails: "accept" or "tempfail" (451)
spamd_timeout = "60s"      # one spamd request
spamd_max_size = "1MiB"    # larger messages are not sent to spamd (as spamc)
spamd_user = ""            # SpamAssassin user preferences to use; empty: none
rspamd_timeout = "60s"     # one rspamd request
rspamd_password = ""       # only when rspamd is the controller
rspamd_max_size = "20MiB"  # larger messages are not sent to rspamd
milter_timeout = "60s"     # one milter conversation stage
greylist = false           # greylist unknown (client network, sender, recipient) triplets
greylist_delay = "5m"      # a retry after this long passes
greylist_retry_window = "2d" # how long a first attempt waits for its retry
greylist_max_age = "35d"   # how long a passed triplet or whitelisted client is remembered
greylist_whitelist_after = 5 # passes that whitelist a client network; -1: never
spf = true                 # check SPF (RFC 7208) and record it in Authentication-Results
spf_reject_fail = false    # 550 for SPF fail (otherwise a score; DMARC decides better)
spf_fail_score = 3.5       # spam score of SPF fail
spf_softfail_score = 1.0   # ... softfail
spf_permerror_score = 0.5  # ... permerror (a broken record)
spf_temperror = "accept"   # DNS failure during SPF: "accept" or "tempfail" (451 4.4.3)
dkim_verify = true         # verify DKIM signatures (RFC 6376)
dkim_max_signatures = 10   # more are not verified
dkim_fail_score = 0.0      # spam score of a failing signature
arc = true                 # verify ARC chains (RFC 8617)
dmarc = true               # evaluate DMARC (RFC 7489)
dmarc_policy = "apply"     # "apply" the sender's p= (reject: 550, quarantine: Junk), "junk" both, "none" record only
dmarc_fail_score = 0.0     # spam score added when DMARC fails, whatever the policy
arc_trusted_sealers = []   # ARC sealers (e.g. ["lists.example.org"]) whose passing chain spares DMARC failures the policy
rules = true               # built-in scoring rules (GTUBE, header and body checks)
rule_scores = {}           # change or turn off (0) built-in rules by symbol, e.g. { HTML_ONLY = 0.5 }
bayes = true               # each user's own statistical filter (trained by moving mail into/out of Junk)
bayes_threshold = 0.9      # spam probability at or above which a user's copy goes into Junk
bayes_min_spam = 20        # trained spam messages a user needs before the filter judges
bayes_min_ham = 20         # ... and ham messages
junk_score = 5.0           # at or above: file into Junk
reject_score = 15.0        # at or above: 554 at DATA
spam_headers = true        # add X-Spam-Status and X-Spam-Score
check_timeout = "30s"      # one check at one stage
submission_checks = ["ratelimit", "clamav", "attachments"] # checks for authenticated submission (587, 465)

[ratelimit]                # 0: no limit; over a limit: 451 4.7.1
per_ip_hour = 0            # messages per client IP (/64 for IPv6) per hour
per_sender_hour = 0        # per envelope sender
per_user_hour = 0          # per authenticated user
domain_day = 0             # recipients per day of one domain's authenticated users
domain_day_caps = {}       # per-domain overrides, e.g. { "example.org" = 5000 }
`

// listenBlock returns the [listen] keys: the standard ports, or with unprivileged the loopback ports `make run`
// uses (no root needed).
func listenBlock(unprivileged bool) string {
	rows := []struct{ name, std, dev, comment string }{
		{"smtp", `[":25"]`, `["127.0.0.1:2525"]`, "MX: STARTTLS offered, AUTH only after TLS"},
		{"submission", `[":587"]`, `["127.0.0.1:2587"]`, "STARTTLS, then AUTH, then mail"},
		{"submissions", `[":465"]`, `["127.0.0.1:2465"]`, "implicit TLS; AUTH required"},
		{"imap", `[":143"]`, `["127.0.0.1:2143"]`, "IMAP4rev2/rev1 with STARTTLS; LOGIN refused before TLS"},
		{"imaps", `[":993"]`, `["127.0.0.1:2993"]`, "IMAP over implicit TLS"},
		{"pop3", `[":110"]`, `["127.0.0.1:2110"]`, "POP3 with STLS; USER/PASS/AUTH refused before TLS"},
		{"pop3s", `[":995"]`, `["127.0.0.1:2995"]`, "POP3 over implicit TLS"},
		{"pop2", `[]`, `[]`, "legacy RFC 937 (e.g. [\":109\"]), off by default; needs allow_plaintext"},
		{"http", `[":8080"]`, `["127.0.0.1:8080"]`, "web admin, autoconfig, metrics (coming)"},
	}
	var b strings.Builder
	for _, r := range rows {
		v := r.std
		if unprivileged {
			v = r.dev
		}
		fmt.Fprintf(&b, "%-11s = %-18s # %s\n", r.name, v, r.comment)
	}
	return b.String()
}

// configText returns the commented config `postern init` writes.
func configText(hostname string, unprivileged bool) string {
	return fmt.Sprintf(configTemplate, hostname, listenBlock(unprivileged))
}

// writeConfig writes dir/postern.toml (dir is created), refusing to replace an existing file: it may hold an
// admin's edits. The file appears whole or not at all.
func writeConfig(dir, hostname string, unprivileged bool) (string, error) {
	path := filepath.Join(dir, "postern.toml")
	if _, err := os.Stat(path); err == nil {
		return "", fmt.Errorf("%s exists; not overwriting it", path)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	tmp := path + ".new"
	if err := pki.WriteFile(tmp, []byte(configText(hostname, unprivileged)), 0o640); err != nil {
		return "", err
	}
	defer os.Remove(tmp)
	// Link, unlike Rename, fails when the target exists: no race with another init.
	if err := os.Link(tmp, path); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, pki.SyncDir(dir)
}

// initOptions are the flags of `postern init`.
type initOptions struct {
	dir, hostname, domain string
	unprivileged          bool
}

func (c *cli) initCmd() *cobra.Command {
	var o initOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "write a config, data dir, CA and certificate; print next steps",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return c.runInit(context.Background(), o) },
	}
	cmd.Flags().StringVar(&o.dir, "dir", ".", "directory for postern.toml and data/")
	cmd.Flags().StringVar(&o.hostname, "hostname", "", "mail host name (default: this machine's name)")
	cmd.Flags().StringVar(&o.domain, "domain", "", "first local domain to add")
	cmd.Flags().BoolVar(&o.unprivileged, "unprivileged", false,
		"listen on 127.0.0.1 ports 2525, 2587, 2465, 2143, 2993, 2110, 2995 and 8080 (no root needed)")
	return cmd
}

func (c *cli) runInit(ctx context.Context, o initOptions) error {
	if o.hostname == "" {
		o.hostname = config.Default().Hostname
	}
	path, err := writeConfig(o.dir, o.hostname, o.unprivileged)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return fmt.Errorf("the written config does not load (a bug; please report it): %w", err)
	}
	minTLS, _ := cfg.TLS.Version()
	if _, err := tlsmgr.New(tlsmgr.Options{DataDir: cfg.DataDir, Hostname: cfg.Hostname, MinVersion: minTLS}); err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer st.Close()
	if o.domain != "" {
		if err := admin.New(st).AddDomain(ctx, o.domain); err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
	}
	c.printNextSteps(path, cfg, o.domain)
	return nil
}

func (c *cli) printNextSteps(path string, cfg *config.Config, domain string) {
	w := c.stdout
	fmt.Fprintf(w, "Wrote %s and %s (database, CA, certificate for %s).\nNext steps:\n", path, cfg.DataDir, cfg.Hostname)
	if domain == "" {
		domain = "example.org"
		fmt.Fprintf(w, "  postern -c %s domain add %s\n", path, domain)
	}
	fmt.Fprintf(w, "  postern -c %s user add postmaster@%s\n", path, domain)
	fmt.Fprintf(w, "  postern -c %s check\n", path)
	fmt.Fprintf(w, "  postern -c %s serve\n", path)
	fmt.Fprintf(w, "Mail clients should trust the built-in CA: %s (postern ca cert prints it).\n",
		filepath.Join(cfg.DataDir, "ca", "ca.crt"))
}

func (c *cli) checkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "validate config, certificates, database",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			o, err := app.TLSOptions(cfg, nil)
			if err != nil {
				return err
			}
			m, err := tlsmgr.New(o)
			if err != nil {
				return err
			}
			if err := m.Check(); err != nil {
				return err
			}
			st, err := app.OpenStore(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				return err
			}
			if err := st.Close(); err != nil {
				return fmt.Errorf("close store: %w", err)
			}
			fmt.Fprintln(c.stdout, "ok")
			return nil
		},
	}
}

func (c *cli) caCmd() *cobra.Command {
	caDir := func() (string, error) {
		cfg, err := c.loadConfig()
		if err != nil {
			return "", err
		}
		return filepath.Join(cfg.DataDir, "ca"), nil
	}
	var out string
	issue := &cobra.Command{Use: "issue HOST [HOST...]", Short: "issue a server certificate from the built-in CA", Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			dir, err := caDir()
			if err != nil {
				return err
			}
			ca, err := pki.InitCA(dir, pki.CAOptions{})
			if err != nil {
				return err
			}
			cert, key, err := ca.Issue(args, 0)
			if err != nil {
				return err
			}
			if out == "" {
				_, err = fmt.Fprintf(c.stdout, "%s%s", cert, key)
				return err
			}
			if err := pki.WriteFile(out+".key", key, 0o600); err != nil {
				return err
			}
			return pki.WriteFile(out+".crt", cert, 0o644)
		}}
	issue.Flags().StringVar(&out, "out", "", "write PREFIX.crt and PREFIX.key instead of printing")
	return group("ca", "the built-in certificate authority",
		&cobra.Command{Use: "init", Short: "create the CA if it does not exist", Args: cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				dir, err := caDir()
				if err != nil {
					return err
				}
				_, err = pki.InitCA(dir, pki.CAOptions{})
				if err == nil {
					fmt.Fprintln(c.stdout, filepath.Join(dir, "ca.crt"))
				}
				return err
			}},
		issue,
		&cobra.Command{Use: "cert", Short: "print the CA certificate (for clients to trust)", Args: cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				dir, err := caDir()
				if err != nil {
					return err
				}
				ca, err := pki.LoadCA(dir)
				if err != nil {
					return err
				}
				_, err = c.stdout.Write(ca.CertPEM())
				return err
			}},
	)
}
