package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
)

func (c *cli) serveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "run every configured listener until SIGTERM/SIGINT; SIGHUP reloads",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			return serve(context.Background(), cfg, newLogger(cfg, c.stderr))
		},
	}
}

// serve runs the app until SIGTERM or SIGINT. SIGHUP re-reads the config file and reloads; a bad file is logged
// and the running configuration kept, as admins expect from Postfix and Dovecot.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	// Subscribe before starting, so a signal that arrives during start-up is not fatal.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	a, err := app.New(cfg, app.Options{Logger: log})
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		sctx, cancel := context.WithTimeout(ctx, config.MustDuration(cfg.SMTP.ShutdownGrace))
		defer cancel()
		_ = a.Shutdown(sctx)
		return fmt.Errorf("start: %w", err)
	}
	log.Info("postern started", "version", version, "hostname", cfg.Hostname, "config", cfg.Path)
	for sig := range sigs {
		if sig != syscall.SIGHUP {
			log.Info("shutting down", "signal", sig.String(), "grace", cfg.SMTP.ShutdownGrace)
			break
		}
		newCfg, err := config.Load(cfg.Path)
		if err == nil {
			err = a.Reload(newCfg)
		}
		if err != nil {
			log.Error("reload failed; keeping the running configuration", "err", err)
			continue
		}
		cfg = newCfg
	}
	sctx, cancel := context.WithTimeout(ctx, config.MustDuration(cfg.SMTP.ShutdownGrace))
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		// Sessions that did not finish in time were tempfailed; nothing acknowledged is lost.
		log.Warn("shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}

// newLogger returns the service log: slog to w at log.level, text or JSON as log.format says.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		level = slog.LevelInfo // Validate has checked it; keep the zero value's meaning explicit
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
