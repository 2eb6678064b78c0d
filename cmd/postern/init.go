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
const configTemplate = `# Postern configuration. Every key shows its default; an unknown key is an error.
# Reference: docs/config.md. Check it with: postern check

hostname = %[1]q          # HELO/EHLO name, certificate name, Received: headers
data_dir = "data"          # database, message blobs, CA, mail log; relative to this file

[listen]                   # each a list of "host:port"; [] disables the service
%[2]s
[tls]
cert_file = ""             # PEM chain; empty: issued for hostname by the built-in CA (data_dir/ca)
key_file = ""
min_version = "1.2"        # "1.2" or "1.3"

[auth]
allow_plaintext = false    # true: accept passwords before TLS (closed networks only; loopback is NOT exempt)
lockout_failures = 10      # failed logins from one IP within lockout_window ...
lockout_window = "10m"
lockout_duration = "15m"   # ... block authentication from it this long

[database]
driver = "sqlite"          # "sqlite" (embedded); "postgres" and "mysql" are planned
dsn = ""                   # empty with sqlite: <data_dir>/postern.db

[dns]
resolver = ""              # "host:port" of the DNS server to use; empty: system resolver

[delivery]
remote_port = 25           # port used to reach MX hosts
max_message_size = "50MiB"
group_commit = true        # concurrent deliveries share one durable commit

[smtp]
max_recipients = 100       # per message; more get 452 4.5.3
max_connections_per_ip = 20
max_connections = 1000
max_commands = 1000        # per session
max_errors = 20            # bad commands per session before 421
read_timeout = "5m"        # RFC 5321 4.5.3.2
shutdown_grace = "10s"     # time sessions in flight get on SIGTERM
banner = ""
mail_log = ""              # one line per message event; "" = <data_dir>/mail.log, "-" = stderr

[log]
level = "info"             # debug, info, warn, error
format = "text"            # text or json

[antivirus]
clamd = ""                 # "tcp:127.0.0.1:3310" or "unix:/run/clamav/clamd.ctl"; empty: off
on_error = "tempfail"      # or "accept"

[antispam]
dnsbl = []
spamd = ""
rspamd = ""
milter = []
greylist = false
junk_score = 5.0
reject_score = 15.0
`

func listenBlock(unprivileged bool) string {
	type svc struct{ name, std, dev string }
	rows := []svc{
		{"smtp", `[":25"]`, `["127.0.0.1:2525"]`},
		{"submission", `[":587"]`, `["127.0.0.1:2587"]`},
		{"submissions", `[":465"]`, `["127.0.0.1:2465"]`},
		{"imap", `[":143"]`, `["127.0.0.1:2143"]`},
		{"imaps", `[":993"]`, `["127.0.0.1:2993"]`},
		{"pop3", `[":110"]`, `["127.0.0.1:2110"]`},
		{"pop3s", `[":995"]`, `["127.0.0.1:2995"]`},
		{"pop2", `[]`, `[]`},
		{"http", `[":8080"]`, `["127.0.0.1:8080"]`},
	}
	var b strings.Builder
	for _, r := range rows {
		v := r.std
		if unprivileged {
			v = r.dev
		}
		fmt.Fprintf(&b, "%-11s = %s\n", r.name, v)
	}
	return b.String()
}

func (c *cli) initCmd() *cobra.Command {
	var dir, hostname, domain string
	var unprivileged bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "write a config, data dir, CA and certificate; print next steps",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if hostname == "" {
				hostname = config.Default().Hostname
			}
			path := filepath.Join(dir, "postern.toml")
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s exists; not overwriting it", path)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if err := pki.WriteFile(path, []byte(fmt.Sprintf(configTemplate, hostname, listenBlock(unprivileged))), 0o640); err != nil {
				return err
			}
			cfg, err := config.Load(path)
			if err != nil {
				return fmt.Errorf("the written config does not load: %w", err)
			}
			min, _ := cfg.TLS.Version()
			if _, err := tlsmgr.New(tlsmgr.Options{DataDir: cfg.DataDir, Hostname: cfg.Hostname, MinVersion: min}); err != nil {
				return err
			}
			ctx := context.Background()
			st, err := app.OpenStore(ctx, cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				return err
			}
			defer st.Close()
			if domain != "" {
				if err := admin.New(st).AddDomain(ctx, domain); err != nil && !errors.Is(err, store.ErrExists) {
					return err
				}
			}
			fmt.Fprintf(c.stdout, "Wrote %s and %s (database, CA, certificate).\nNext steps:\n", path, cfg.DataDir)
			if domain == "" {
				domain = "example.org"
				fmt.Fprintf(c.stdout, "  postern -c %s domain add %s\n", path, domain)
			}
			fmt.Fprintf(c.stdout, "  postern -c %s user add postmaster@%s\n  postern -c %s check\n  postern -c %s serve\n",
				path, domain, path, path)
			fmt.Fprintf(c.stdout, "Clients should trust %s\n", filepath.Join(cfg.DataDir, "ca", "ca.crt"))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".", "directory for postern.toml and data/")
	cmd.Flags().StringVar(&hostname, "hostname", "", "mail host name (default: this machine's name)")
	cmd.Flags().StringVar(&domain, "domain", "", "first local domain to add")
	cmd.Flags().BoolVar(&unprivileged, "unprivileged", false, "listen on 127.0.0.1 with ports 2525, 2587, 2465, 2143, 2993, 2110, 2995, 8080")
	return cmd
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
			min, _ := cfg.TLS.Version()
			m, err := tlsmgr.New(tlsmgr.Options{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, DataDir: cfg.DataDir, Hostname: cfg.Hostname, MinVersion: min})
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
			st.Close()
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
