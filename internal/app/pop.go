package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/pop2server"
	"github.com/postern/postern/internal/pop3server"
)

// buildPOP creates the POP servers: "pop3" (110, STLS; USER/PASS/AUTH refused before TLS unless
// auth.allow_plaintext), "pop3s" (995, implicit TLS) and the legacy "pop2" (109, plain TCP, off by default; it
// refuses every session unless auth.allow_plaintext, see pop2server). All three share one maildrop lock table,
// so a second POP3 or POP2 session on a maildrop gets [IN-USE]; the lock table is in-process, which is right for
// the embedded store (a multi-node store needs a lock in the database, see pop3server.LocalLocks).
func (a *App) buildPOP(cfg *config.Config) error {
	locks := pop3server.NewLocalLocks()
	for _, m := range []struct {
		name     string
		implicit bool
		addrs    []string
	}{
		{"pop3", false, cfg.Listen.POP3},
		{"pop3s", true, cfg.Listen.POP3S},
	} {
		if len(m.addrs) == 0 {
			continue
		}
		srv, err := pop3server.New(pop3server.Options{
			Hostname:           cfg.Hostname,
			TLSConfig:          a.tls.TLSConfig(),
			AllowPlaintextAuth: cfg.Auth.AllowPlaintext,
			MaxConnections:     cfg.POP3.MaxConnections,
			MaxConnsPerIP:      cfg.POP3.MaxConnsPerIP,
			Store:              a.store,
			Blobs:              a.store.Blobs(),
			Auth:               a.auth,
			Locks:              locks,
			Logger:             a.log.With("service", m.name),
		})
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		if err := a.addPOPService(m.name, m.implicit, m.addrs, srv, srv.Serve, pop3server.ErrServerClosed); err != nil {
			return err
		}
	}
	if len(cfg.Listen.POP2) == 0 {
		return nil
	}
	srv, err := pop2server.New(pop2server.Options{
		Hostname:           cfg.Hostname,
		AllowPlaintextAuth: cfg.Auth.AllowPlaintext,
		Store:              a.store,
		Blobs:              a.store.Blobs(),
		Auth:               a.auth,
		Locks:              locks,
		Logger:             a.log.With("service", "pop2"),
	})
	if err != nil {
		return fmt.Errorf("pop2: %w", err)
	}
	return a.addPOPService("pop2", false, cfg.Listen.POP2, srv, srv.Serve, pop2server.ErrServerClosed)
}

// addPOPService binds a server's listeners and appends it to a.services; Serve's ErrServerClosed after Shutdown
// is not an error.
func (a *App) addPOPService(name string, implicit bool, addrs []string, srv interface{ Shutdown(context.Context) error }, serve func(net.Listener) error, closed error) error {
	svc := service{name: name, server: srv, serve: func(ln net.Listener) error {
		if err := serve(ln); !errors.Is(err, closed) {
			return err
		}
		return nil
	}}
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll(svc.listeners)
			return fmt.Errorf("listen %s on %s: %w", name, addr, err)
		}
		if implicit {
			ln = tls.NewListener(ln, a.tls.TLSConfig())
		}
		svc.listeners = append(svc.listeners, ln)
	}
	a.services = append(a.services, svc)
	return nil
}
