package main

import (
	"context"
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			log := newLogger(cfg)
			a, err := app.New(cfg, app.Options{Logger: log})
			if err != nil {
				return err
			}
			ctx := context.Background()
			if err := a.Start(ctx); err != nil {
				return err
			}
			log.Info("postern started", "version", version, "hostname", cfg.Hostname, "config", cfg.Path)
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
			for sig := range sigs {
				if sig == syscall.SIGHUP {
					newCfg, err := config.Load(cfg.Path)
					if err == nil {
						err = a.Reload(newCfg)
					}
					if err != nil {
						log.Error("reload failed; keeping the running configuration", "err", err)
					}
					continue
				}
				log.Info("shutting down", "signal", sig.String())
				break
			}
			sctx, cancel := context.WithTimeout(ctx, config.MustDuration(cfg.SMTP.ShutdownGrace))
			defer cancel()
			if err := a.Shutdown(sctx); err != nil {
				log.Warn("shutdown", "err", err)
			}
			log.Info("stopped")
			return nil
		},
	}
}

func newLogger(cfg *config.Config) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
