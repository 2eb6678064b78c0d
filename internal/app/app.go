package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/postern/postern/internal/auth"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/delivery"
	"github.com/postern/postern/internal/directory"
	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/maillog"
	"github.com/postern/postern/internal/queue"
	"github.com/postern/postern/internal/smtpserver"
	"github.com/postern/postern/internal/store"
	"github.com/postern/postern/internal/store/sqlite"
	"github.com/postern/postern/internal/tlsmgr"
)

// Options are the process-level inputs of an App.
type Options struct {
	Logger *slog.Logger
}

// App is one running Postern: the store, the shared services and every listener.
type App struct {
	log *slog.Logger

	mu  sync.Mutex // guards cfg
	cfg *config.Config

	store    store.Store
	tls      *tlsmgr.Manager
	dir      *directory.Directory // shared by every protocol server
	auth     *auth.Service        // one lockout for SMTP, IMAP, POP3 and POP2
	mailLog  *maillog.Logger
	logFile  io.Closer
	services []service
	queue    *queue.Queue // outbound scheduler (queue.go)
	filters  *filters     // inbound checks (filters.go)
	resolver *dns.Client  // shared by the checks and outbound delivery: one DNS cache (resolver.go)
	outbound io.Closer    // its SMTP client: idle connections are closed after the scheduler stops (queue.go)

	stopBG context.CancelFunc // stops background jobs
	bg     sync.WaitGroup     // background jobs
}

// blobCollector is implemented by stores that can remove orphaned blobs.
type blobCollector interface {
	GCBlobs(ctx context.Context, olderThan time.Duration) (int, error)
}

// service is one protocol server bound to its listeners.
type service struct {
	name      string
	server    interface{ Shutdown(context.Context) error }
	listeners []net.Listener
	serve     func(net.Listener) error
}

// OpenStore opens (creating and migrating when needed) the store the config names. Management commands use it.
func OpenStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (store.Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch cfg.Database.Driver {
	case "sqlite":
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("create data_dir: %w", err)
		}
		st, err := sqlite.Open(ctx, sqlite.Options{
			Path:        cfg.DatabaseDSN(),
			BlobDir:     filepath.Join(cfg.DataDir, "blobs"),
			GroupCommit: cfg.Delivery.GroupCommit,
			Logger:      log,
		})
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return st, nil
	default:
		return nil, fmt.Errorf("database.driver %q is not built into this version", cfg.Database.Driver)
	}
}

// New builds every component from cfg; nothing listens until Start.
func New(cfg *config.Config, opts Options) (*App, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &App{log: log, cfg: cfg}
	ctx := context.Background()
	var err error
	if a.store, err = OpenStore(ctx, cfg, log); err != nil {
		return nil, err
	}
	tlsOpts, err := TLSOptions(cfg, log)
	if err == nil {
		a.tls, err = tlsmgr.New(tlsOpts)
	}
	if err != nil {
		a.store.Close()
		return nil, fmt.Errorf("tls: %w", err)
	}
	if err := a.openMailLog(cfg); err != nil {
		a.store.Close()
		return nil, err
	}
	if err := a.buildShared(cfg); err != nil {
		a.close()
		return nil, err
	}
	// Each protocol family has its own builder (smtp here, imap.go, pop.go); each appends to a.services.
	for _, build := range []func(*config.Config) error{a.buildSMTP, a.buildIMAP, a.buildPOP, a.buildQueue, a.buildHTTP} {
		if err := build(cfg); err != nil {
			closeServices(a.services)
			a.close()
			return nil, err
		}
	}
	return a, nil
}

func (a *App) openMailLog(cfg *config.Config) error {
	path := cfg.SMTP.MailLog
	switch path {
	case "-":
		a.mailLog = maillog.New(os.Stderr, nil)
		return nil
	case "":
		path = "mail.log"
	}
	if !filepath.IsAbs(path) { // relative to data_dir, as the config comment says
		path = filepath.Join(cfg.DataDir, path)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open mail log: %w", err)
	}
	a.mailLog, a.logFile = maillog.New(f, nil), f
	return nil
}

// buildShared creates what every protocol server shares: the directory and the authentication service (one
// lockout table, so failures on IMAP count against SMTP AUTH too).
func (a *App) buildShared(cfg *config.Config) error {
	var err error
	if a.dir, err = directory.New(directory.Options{Store: a.store, Logger: a.log}); err != nil {
		return err
	}
	if a.auth, err = newAuth(cfg, a.store, a.tls, a.log); err != nil {
		return err
	}
	a.filters, err = a.buildFilters(cfg)
	return err
}

// HashOptions are the secrets stored with each password under cfg: SCRAM's when SCRAM is on, CRAM-MD5's only when
// the admin turned it on. The CLI's user commands and the login-time upgrade use the same.
func HashOptions(cfg *config.Config) auth.HashOptions {
	o := auth.HashOptions{CRAMMD5: cfg.Auth.CRAMMD5}
	if cfg.Auth.SCRAM {
		o.SCRAMIterations = cfg.Auth.SCRAMIterations
	}
	return o
}

// newAuth builds the authentication service from [auth]: lockout, failure delay, mechanisms, EXTERNAL's CAs.
func newAuth(cfg *config.Config, users auth.UserStore, tlsm *tlsmgr.Manager, log *slog.Logger) (*auth.Service, error) {
	accountFailures := cfg.Auth.AccountLockoutFailures
	if accountFailures == 0 {
		accountFailures = -1 // off
	}
	lockout := auth.NewLockout(auth.LockoutOptions{
		Failures:        cfg.Auth.LockoutFailures,
		Window:          config.MustDuration(cfg.Auth.LockoutWindow),
		Duration:        config.MustDuration(cfg.Auth.LockoutDuration),
		AccountFailures: accountFailures,
	})
	delay := config.MustDuration(cfg.Auth.FailureDelay)
	if delay == 0 {
		delay = -1 // none
	}
	o := auth.Options{Users: users, Lockout: lockout, Logger: log, FailureDelay: delay,
		SCRAM: cfg.Auth.SCRAM, CRAMMD5: cfg.Auth.CRAMMD5, UpgradeCredentials: true, Hash: HashOptions(cfg),
		Hostname: cfg.Hostname, ServerCertificate: tlsm.ServerCertificate}
	if cfg.Auth.ClientCAFile != "" {
		pem, err := os.ReadFile(cfg.Auth.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("auth.client_ca_file: %w", err)
		}
		o.ClientCAs = x509.NewCertPool()
		if !o.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("auth.client_ca_file: %s holds no PEM certificate", cfg.Auth.ClientCAFile)
		}
	}
	return auth.New(o)
}

// buildSMTP creates the MX, submission and submissions servers sharing one directory, auth and delivery agent.
func (a *App) buildSMTP(cfg *config.Config) error {
	dir, authSvc := a.dir, a.auth
	spool := filepath.Join(cfg.DataDir, "tmp") // big messages wait here for the DATA-stage checks
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return fmt.Errorf("create spool directory: %w", err)
	}
	o := delivery.Options{Directory: dir, Store: a.store, Hostname: cfg.Hostname, SpoolDir: spool, MailLog: a.mailLog, Logger: a.log}
	if a.filters.classifier != nil {
		o.Classifier = a.filters.classifier
	}
	agent, err := delivery.New(o)
	if err != nil {
		return err
	}
	for _, m := range []struct {
		name  string
		mode  smtpserver.Mode
		addrs []string
	}{
		{"smtp", smtpserver.ModeMX, cfg.Listen.SMTP},
		{"submission", smtpserver.ModeSubmission, cfg.Listen.Submission},
		{"submissions", smtpserver.ModeSubmissions, cfg.Listen.Submissions},
	} {
		if len(m.addrs) == 0 {
			continue
		}
		srv, err := smtpserver.New(smtpserver.Options{
			Mode:               m.mode,
			Hostname:           cfg.Hostname,
			TLSConfig:          a.tls.TLSConfig(),
			AllowPlaintextAuth: cfg.Auth.AllowPlaintext,
			MaxMessageBytes:    cfg.MaxMessageBytes(),
			MaxRecipients:      cfg.SMTP.MaxRecipients,
			MaxConnections:     cfg.SMTP.MaxConnections,
			MaxConnsPerIP:      cfg.SMTP.MaxConnsPerIP,
			MaxCommands:        cfg.SMTP.MaxCommands,
			MaxErrors:          cfg.SMTP.MaxErrors,
			ReadTimeout:        config.MustDuration(cfg.SMTP.ReadTimeout),
			Directory:          dir,
			Auth:               authSvc,
			Deliverer:          agent,
			Filters:            a.filters.forMode(m.mode),
			MailLog:            a.mailLog,
			Logger:             a.log.With("service", m.name),
		})
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		svc := service{name: m.name, server: srv, serve: srv.Serve}
		for _, addr := range m.addrs {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				closeAll(svc.listeners)
				return fmt.Errorf("listen %s on %s: %w", m.name, addr, err)
			}
			if m.mode == smtpserver.ModeSubmissions {
				ln = tls.NewListener(ln, a.tls.TLSConfig())
			}
			svc.listeners = append(svc.listeners, ln)
		}
		a.services = append(a.services, svc)
	}
	return nil
}

// closeServices closes the listeners of services built before a later builder failed.
func closeServices(svcs []service) {
	for _, svc := range svcs {
		closeAll(svc.listeners)
	}
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// collectBlobs removes blobs orphaned by a crash between writing a blob and committing it: at start, then hourly.
// An hour is far longer than the moment between a blob's rename and its commit.
func (a *App) collectBlobs(ctx context.Context) {
	gc, ok := a.store.(blobCollector)
	if !ok {
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := gc.GCBlobs(ctx, time.Hour); err != nil && ctx.Err() == nil {
			a.log.Warn("blob collection", "err", err)
		} else if n > 0 {
			a.log.Info("removed orphaned blobs", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Start serves every listener in the background.
func (a *App) Start(ctx context.Context) error {
	bgctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.stopBG = cancel
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		a.collectBlobs(bgctx)
	}()
	a.bg.Add(1)
	go func() { // certificate file changes, renewals, ACME
		defer a.bg.Done()
		a.tls.Run(bgctx)
	}()
	a.startQueue(bgctx)
	a.pingEngines(bgctx)
	if kv := a.filters.kv; kv != nil {
		a.bg.Add(1)
		go func() {
			defer a.bg.Done()
			a.purgeKV(bgctx, kv)
		}()
	}
	for _, svc := range a.services {
		for _, ln := range svc.listeners {
			a.log.Info("listening", "service", svc.name, "addr", ln.Addr().String())
			go func(svc service, ln net.Listener) {
				if err := svc.serve(ln); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, smtpserver.ErrServerClosed) {
					a.log.Error("serve", "service", svc.name, "err", err)
				}
			}(svc, ln)
		}
	}
	return nil
}

// Reload applies a re-read config: certificates are reloaded; listener changes need a restart and are logged.
func (a *App) Reload(cfg *config.Config) error {
	a.mu.Lock()
	old := a.cfg
	a.cfg = cfg
	a.mu.Unlock()
	if fmt.Sprint(old.Listen) != fmt.Sprint(cfg.Listen) || old.DataDir != cfg.DataDir || old.Database != cfg.Database {
		a.log.Warn("reload: listen, data_dir and database changes take effect at the next restart")
	}
	if fmt.Sprint(old.Antispam, old.Antivirus, old.RateLimit) != fmt.Sprint(cfg.Antispam, cfg.Antivirus, cfg.RateLimit) {
		a.log.Warn("reload: [antispam], [antivirus] and [ratelimit] changes take effect at the next restart")
	}
	if err := a.tls.Reload(); err != nil {
		return fmt.Errorf("reload certificates: %w", err)
	}
	a.log.Info("reloaded", "config", cfg.Path)
	return nil
}

// Shutdown stops accepting, lets sessions in flight finish until ctx is done, then closes the store.
func (a *App) Shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(a.services))
	for i, svc := range a.services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = svc.server.Shutdown(ctx)
		}()
	}
	wg.Wait()
	if a.stopBG != nil {
		a.stopBG()
	}
	a.bg.Wait()
	return errors.Join(append(errs, a.close())...)
}

func (a *App) close() error {
	var errs []error
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	if a.logFile != nil {
		errs = append(errs, a.logFile.Close())
	}
	return errors.Join(errs...)
}
