// Package config holds Postern's configuration: the TOML structure, its defaults and Validate.
//
// Every key has a default; an unknown key is an error. The names are public interface (see DESIGN.md):
// add to them, never rename them.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where postern looks for its config when -c is not given; FallbackPath is tried next.
const (
	DefaultPath  = "/etc/postern/postern.toml"
	FallbackPath = "postern.toml"
)

// Config is the whole configuration file.
type Config struct {
	Hostname  string    `toml:"hostname"`
	DataDir   string    `toml:"data_dir"`
	Listen    Listen    `toml:"listen"`
	TLS       TLS       `toml:"tls"`
	Auth      Auth      `toml:"auth"`
	Database  Database  `toml:"database"`
	DNS       DNS       `toml:"dns"`
	Delivery  Delivery  `toml:"delivery"`
	SMTP      SMTP      `toml:"smtp"`
	IMAP      Access    `toml:"imap"`
	POP3      Access    `toml:"pop3"`
	Log       Log       `toml:"log"`
	Antivirus Antivirus `toml:"antivirus"`
	Antispam  Antispam  `toml:"antispam"`
	RateLimit RateLimit `toml:"ratelimit"`

	// Path is the file the config was read from ("" when built from defaults).
	Path string `toml:"-"`
}

// Listen lists the addresses of each service; an empty list disables it.
type Listen struct {
	SMTP        []string `toml:"smtp"`
	Submission  []string `toml:"submission"`
	Submissions []string `toml:"submissions"`
	IMAP        []string `toml:"imap"`
	IMAPS       []string `toml:"imaps"`
	POP3        []string `toml:"pop3"`
	POP3S       []string `toml:"pop3s"`
	POP2        []string `toml:"pop2"`
	HTTP        []string `toml:"http"`
}

// TLS configures certificates.
type TLS struct {
	CertFile   string `toml:"cert_file"` // empty: issued for hostname by the built-in CA
	KeyFile    string `toml:"key_file"`
	MinVersion string `toml:"min_version"` // "1.2" or "1.3" ("1.0", "1.1" only with AllowInsecureVersions)
	// AllowInsecureVersions permits min_version "1.0" or "1.1" (RFC 8996 deprecates them).
	AllowInsecureVersions bool `toml:"allow_insecure_versions"`
	// Names are more host names clients use (SNI): the built-in CA and ACME issue a certificate for each.
	Names []string `toml:"names"`
	// Certificates are more PEM certificate/key files; SNI picks among them by the names they cover.
	Certificates []CertPair `toml:"certificates"`
	// CheckInterval is how often certificate files are checked for changes and renewals.
	CheckInterval string `toml:"check_interval"`
	ACME          ACME   `toml:"acme"`
}

// CertPair names one certificate chain file and its key file.
type CertPair struct {
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

// ACME configures certificates from an ACME CA (RFC 8555) such as Let's Encrypt; off while Directory is empty.
type ACME struct {
	Directory   string `toml:"directory"`    // e.g. "https://acme-v02.api.letsencrypt.org/directory"
	Email       string `toml:"email"`        // account contact
	Challenge   string `toml:"challenge"`    // "http-01" (port 80 -> listen.http) or "tls-alpn-01" (443 -> a TLS port)
	CAFile      string `toml:"ca_file"`      // PEM roots to trust for the directory's HTTPS; "": the system's
	RenewBefore string `toml:"renew_before"` // renew this long before expiry (at most a third of the lifetime)
}

// Auth configures authentication policy.
type Auth struct {
	// AllowPlaintext accepts passwords before TLS. Loopback is not exempt.
	AllowPlaintext bool `toml:"allow_plaintext"`
	// LockoutFailures failed logins from one IP within LockoutWindow block authentication from it for LockoutDuration.
	LockoutFailures int    `toml:"lockout_failures"`
	LockoutWindow   string `toml:"lockout_window"`
	LockoutDuration string `toml:"lockout_duration"`
	// AccountLockoutFailures failed logins for one account within LockoutWindow, from any addresses, lock it for
	// LockoutDuration against addresses that have not logged into it lately; 0: off.
	AccountLockoutFailures int `toml:"account_lockout_failures"`
	// FailureDelay is how long a failed login takes (from the third in a row on: doubling, up to 8 times); "0s": none.
	FailureDelay string `toml:"failure_delay"`
	// SCRAM offers SCRAM-SHA-256 and SCRAM-SHA-1 (and -PLUS over TLS) and stores their secrets with each password.
	SCRAM           bool `toml:"scram"`
	SCRAMIterations int  `toml:"scram_iterations"`
	// CRAMMD5 offers CRAM-MD5 and stores its plaintext-equivalent secret with each password (see docs/auth.md).
	CRAMMD5 bool `toml:"cram_md5"`
	// ClientCAFile holds the PEM CA certificates whose client certificates log in with SASL EXTERNAL; "": off.
	ClientCAFile string `toml:"client_ca_file"`
}

// Database selects the metadata backend.
type Database struct {
	Driver string `toml:"driver"` // "sqlite", "postgres", "mysql"
	DSN    string `toml:"dsn"`    // empty with sqlite: <data_dir>/postern.db
}

// DNS configures name resolution.
type DNS struct {
	Resolver string `toml:"resolver"` // "host:port"; empty: system resolver
	// CacheSize is how many answers the client keeps for their TTL (at most an hour; negative answers per RFC 2308,
	// at most 15 minutes); 0 turns the cache off. Concurrent identical lookups share one query either way.
	CacheSize int `toml:"cache_size"`
}

// Delivery configures message acceptance and delivery.
type Delivery struct {
	RemotePort     int    `toml:"remote_port"`
	MaxMessageSize string `toml:"max_message_size"`
	// GroupCommit lets concurrent deliveries share one durable commit.
	GroupCommit bool `toml:"group_commit"`
	// Outbound queue: a message still undelivered after Expiry bounces; its sender is warned once after
	// WarningDelay ("0": never). Workers deliveries run at once.
	Expiry       string `toml:"expiry"`
	WarningDelay string `toml:"warning_delay"`
	Workers      int    `toml:"workers"`
	// RelayHost ("host:port"), when set, takes all outgoing mail (a smarthost); AUTH PLAIN with RelayUser and
	// RelayPassword happens only over TLS whose certificate verifies. RelayTLS is "starttls" or "implicit".
	RelayHost     string `toml:"relay_host"`
	RelayUser     string `toml:"relay_user"`
	RelayPassword string `toml:"relay_password"`
	RelayTLS      string `toml:"relay_tls"`
	// Transport maps a recipient domain (".domain" for its subdomains) to the "host:port" that takes its mail
	// instead of its MX hosts.
	Transport map[string]string `toml:"transport"`
	// DKIM signs outgoing mail with the keys `postern dns records DOMAIN` created under data_dir/dkim.
	DKIM bool `toml:"dkim"`
	// MTASTS fetches and enforces recipient domains' MTA-STS policies (RFC 8461) from
	// https://mta-sts.<domain>:MTASTSPort (443; tests set another).
	MTASTS     bool `toml:"mta_sts"`
	MTASTSPort int  `toml:"mta_sts_port"`
	// DANE requires TLS authenticated by the MX host's TLSA records when the resolver validates DNSSEC
	// (RFC 7672).
	DANE bool `toml:"dane"`
	// CAFile is a PEM file of more trust anchors (besides the system's) for verifying remote servers: the relay
	// host, MX hosts under MTA-STS or REQUIRETLS, and MTA-STS policy hosts.
	CAFile string `toml:"ca_file"`
	// ConnectionCacheTime keeps a connection open this long after a delivery for the next message to the same
	// host ("0": off); ConnectionReuseLimit caps the messages one connection carries.
	ConnectionCacheTime  string `toml:"connection_cache_time"`
	ConnectionReuseLimit int    `toml:"connection_reuse_limit"`
}

// SMTP holds limits of the SMTP listeners.
type SMTP struct {
	MaxRecipients  int    `toml:"max_recipients"`
	MaxConnsPerIP  int    `toml:"max_connections_per_ip"`
	MaxConnections int    `toml:"max_connections"`
	MaxCommands    int    `toml:"max_commands"`   // per session, before 421
	MaxErrors      int    `toml:"max_errors"`     // bad commands per session, before 421
	ReadTimeout    string `toml:"read_timeout"`   // RFC 5321 4.5.3.2: at least 5 minutes
	ShutdownGrace  string `toml:"shutdown_grace"` // time sessions in flight get on SIGTERM
	Banner         string `toml:"banner"`         // text after the hostname in the 220 greeting
	MailLog        string `toml:"mail_log"`       // path of the mail log; "" = <data_dir>/mail.log, "-" = stderr
}

// Log configures the service log.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// Default returns the configuration used for every key the file does not set.
func Default() *Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return &Config{
		Hostname: host,
		DataDir:  "/var/lib/postern",
		Listen: Listen{
			SMTP:        []string{":25"},
			Submission:  []string{":587"},
			Submissions: []string{":465"},
			IMAP:        []string{":143"},
			IMAPS:       []string{":993"},
			POP3:        []string{":110"},
			POP3S:       []string{":995"},
			POP2:        []string{},
			HTTP:        []string{":8080"},
		},
		TLS: TLS{MinVersion: "1.2", Names: []string{}, Certificates: []CertPair{}, CheckInterval: "1m",
			ACME: ACME{Challenge: "http-01", RenewBefore: "30d"}},
		Auth: Auth{LockoutFailures: 10, LockoutWindow: "10m", LockoutDuration: "15m", AccountLockoutFailures: 30,
			FailureDelay: "1s", SCRAM: true, SCRAMIterations: 10000},
		Database: Database{
			Driver: "sqlite",
		},
		DNS: DNS{CacheSize: 10000},
		Delivery: Delivery{RemotePort: 25, MaxMessageSize: "50MiB", GroupCommit: true, Expiry: "5d", WarningDelay: "4h",
			Workers: 8, RelayTLS: "starttls", Transport: map[string]string{}, DKIM: true,
			MTASTS: true, MTASTSPort: 443, DANE: true, ConnectionCacheTime: "5s", ConnectionReuseLimit: 100},
		SMTP: SMTP{
			MaxRecipients:  100,
			MaxConnsPerIP:  20,
			MaxConnections: 1000,
			MaxCommands:    1000,
			MaxErrors:      20,
			ReadTimeout:    "5m",
			ShutdownGrace:  "10s",
		},
		IMAP:      defaultIMAP(),
		POP3:      defaultPOP3(),
		Log:       Log{Level: "info", Format: "text"},
		Antivirus: defaultAntivirus(),
		Antispam:  defaultAntispam(),
		RateLimit: RateLimit{DomainDayCaps: map[string]int{}},
	}
}

// Load reads the file at path over the defaults. Unknown keys are an error.
func Load(path string) (*Config, error) {
	c := Default()
	md, err := toml.DecodeFile(path, c)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("config %s: unknown key(s): %s", path, strings.Join(keys, ", "))
	}
	c.Path = path
	if !filepath.IsAbs(c.DataDir) && c.DataDir != "" {
		// A relative data_dir is relative to the config file, so "postern -c dir/postern.toml" works from anywhere.
		c.DataDir = filepath.Join(filepath.Dir(path), c.DataDir)
	}
	return c, c.Validate()
}

// Find returns the config path to use: explicit if set, else DefaultPath, else FallbackPath when it exists.
func Find(explicit string) string {
	if explicit != "" {
		return explicit
	}
	if _, err := os.Stat(DefaultPath); err == nil {
		return DefaultPath
	}
	return FallbackPath
}

// Validate checks every value and explains the first problem in one line.
func (c *Config) Validate() error {
	var errs []error
	if c.Hostname == "" {
		errs = append(errs, errors.New("hostname: must not be empty"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: must not be empty"))
	}
	for name, addrs := range c.Listen.byName() {
		for _, a := range addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				errs = append(errs, fmt.Errorf("listen.%s: %q is not host:port", name, a))
			}
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls: cert_file and key_file must be set together"))
	}
	errs = append(errs, c.TLS.validate()...)
	switch c.Database.Driver {
	case "sqlite":
	case "postgres", "mysql":
		errs = append(errs, fmt.Errorf("database.driver: %q is not built into this version yet", c.Database.Driver))
	default:
		errs = append(errs, fmt.Errorf("database.driver: %q is not one of sqlite, postgres, mysql", c.Database.Driver))
	}
	if _, err := ParseSize(c.Delivery.MaxMessageSize); err != nil {
		errs = append(errs, fmt.Errorf("delivery.max_message_size: %w", err))
	}
	if c.DNS.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("dns.cache_size: %d must not be negative (0 turns the cache off)", c.DNS.CacheSize))
	}
	if c.Delivery.RemotePort <= 0 || c.Delivery.RemotePort > 65535 {
		errs = append(errs, fmt.Errorf("delivery.remote_port: %d is not a port", c.Delivery.RemotePort))
	}
	errs = append(errs, c.Auth.validate()...)
	errs = append(errs, c.Delivery.validateOutbound()...)
	for _, d := range []struct{ key, val string }{
		{"delivery.expiry", c.Delivery.Expiry},
		{"delivery.warning_delay", c.Delivery.WarningDelay},
		{"delivery.connection_cache_time", c.Delivery.ConnectionCacheTime},
		{"auth.failure_delay", c.Auth.FailureDelay},
		{"auth.lockout_window", c.Auth.LockoutWindow},
		{"auth.lockout_duration", c.Auth.LockoutDuration},
		{"smtp.read_timeout", c.SMTP.ReadTimeout},
		{"smtp.shutdown_grace", c.SMTP.ShutdownGrace},
	} {
		if _, err := ParseDuration(d.val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.key, err))
		}
	}
	errs = append(errs, c.validateFilters()...)
	errs = append(errs, c.validateAccess()...)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Log.Level))
	}
	return errors.Join(errs...)
}

// validate checks the [auth] keys that are not durations.
func (a Auth) validate() []error {
	var errs []error
	if a.LockoutFailures < 1 {
		errs = append(errs, fmt.Errorf("auth.lockout_failures: %d must be at least 1", a.LockoutFailures))
	}
	if a.AccountLockoutFailures < 0 {
		errs = append(errs, fmt.Errorf("auth.account_lockout_failures: %d must be 0 (off) or more", a.AccountLockoutFailures))
	}
	// RFC 7677 4: at least 4096; the upper bound keeps client logins from taking minutes.
	if a.SCRAMIterations < 4096 || a.SCRAMIterations > 10_000_000 {
		errs = append(errs, fmt.Errorf("auth.scram_iterations: %d is not between 4096 and 10000000", a.SCRAMIterations))
	}
	return errs
}

// validateOutbound checks the relay and transport keys.
func (d Delivery) validateOutbound() []error {
	var errs []error
	if d.Workers <= 0 {
		errs = append(errs, fmt.Errorf("delivery.workers: %d must be at least 1", d.Workers))
	}
	if d.RelayHost != "" {
		if _, _, err := net.SplitHostPort(d.RelayHost); err != nil {
			errs = append(errs, fmt.Errorf("delivery.relay_host: %q is not host:port", d.RelayHost))
		}
	}
	if (d.RelayUser == "") != (d.RelayPassword == "") {
		errs = append(errs, errors.New("delivery: relay_user and relay_password must be set together"))
	}
	if d.MTASTSPort <= 0 || d.MTASTSPort > 65535 {
		errs = append(errs, fmt.Errorf("delivery.mta_sts_port: %d is not a port", d.MTASTSPort))
	}
	if d.ConnectionReuseLimit < 1 {
		errs = append(errs, fmt.Errorf("delivery.connection_reuse_limit: %d must be at least 1", d.ConnectionReuseLimit))
	}
	switch d.RelayTLS {
	case "starttls", "implicit":
	default:
		errs = append(errs, fmt.Errorf("delivery.relay_tls: %q is not starttls or implicit", d.RelayTLS))
	}
	for dom, hp := range d.Transport {
		if dom == "" || strings.ContainsAny(dom, " @") {
			errs = append(errs, fmt.Errorf("delivery.transport: %q is not a domain", dom))
		}
		if hp == "" || strings.ContainsAny(hp, " /") {
			errs = append(errs, fmt.Errorf("delivery.transport: %q for %s is not host or host:port", hp, dom))
		}
	}
	return errs
}

func (l Listen) byName() map[string][]string {
	return map[string][]string{
		"smtp": l.SMTP, "submission": l.Submission, "submissions": l.Submissions,
		"imap": l.IMAP, "imaps": l.IMAPS, "pop3": l.POP3, "pop3s": l.POP3S, "pop2": l.POP2, "http": l.HTTP,
	}
}

// Version returns the crypto/tls constant of MinVersion.
func (t TLS) Version() (uint16, error) {
	switch t.MinVersion {
	case "1.2", "":
		return 0x0303, nil
	case "1.3":
		return 0x0304, nil
	case "1.0", "1.1":
		if !t.AllowInsecureVersions {
			return 0, fmt.Errorf("tls.min_version: %q is below 1.2 (RFC 8996); set tls.allow_insecure_versions = true to allow it",
				t.MinVersion)
		}
		return map[string]uint16{"1.0": 0x0301, "1.1": 0x0302}[t.MinVersion], nil
	}
	return 0, fmt.Errorf("tls.min_version: %q is not 1.2 or 1.3", t.MinVersion)
}

// validate checks [tls] besides the certificate pair.
func (t TLS) validate() []error {
	var errs []error
	if _, err := t.Version(); err != nil {
		errs = append(errs, err)
	}
	for i, p := range t.Certificates {
		if p.CertFile == "" || p.KeyFile == "" {
			errs = append(errs, fmt.Errorf("tls.certificates[%d]: cert_file and key_file must both be set", i))
		}
	}
	for _, n := range t.Names {
		if n == "" || strings.ContainsAny(n, "/\\ ") {
			errs = append(errs, fmt.Errorf("tls.names: %q is not a host name", n))
		}
	}
	if d, err := ParseDuration(t.CheckInterval); err != nil || d <= 0 {
		errs = append(errs, fmt.Errorf("tls.check_interval: %q is not a positive duration", t.CheckInterval))
	}
	if d, err := ParseDuration(t.ACME.RenewBefore); err != nil || d <= 0 {
		errs = append(errs, fmt.Errorf("tls.acme.renew_before: %q is not a positive duration", t.ACME.RenewBefore))
	}
	switch t.ACME.Challenge {
	case "http-01", "tls-alpn-01":
	default:
		errs = append(errs, fmt.Errorf("tls.acme.challenge: %q is not http-01 or tls-alpn-01", t.ACME.Challenge))
	}
	if t.ACME.Directory != "" && !strings.HasPrefix(t.ACME.Directory, "https://") {
		errs = append(errs, fmt.Errorf("tls.acme.directory: %q is not an https:// URL (RFC 8555 6.1)", t.ACME.Directory))
	}
	return errs
}

// DatabaseDSN returns the DSN to open, filling the sqlite default.
func (c *Config) DatabaseDSN() string {
	if c.Database.DSN == "" && c.Database.Driver == "sqlite" {
		return filepath.Join(c.DataDir, "postern.db")
	}
	return c.Database.DSN
}

// MaxMessageBytes returns delivery.max_message_size in bytes (Validate has checked it).
func (c *Config) MaxMessageBytes() int64 {
	n, _ := ParseSize(c.Delivery.MaxMessageSize)
	return n
}

// ParseSize parses "50MiB", "10MB", "1G", "2048" into bytes. Units are binary (KiB/MiB/GiB) or decimal (KB/MB/GB);
// single letters K, M, G are binary, as admins of Postfix and Dovecot expect.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty size")
	}
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size like 50MiB", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q has an unknown unit %q", s, unit)
	}
	return int64(n * mult), nil
}
