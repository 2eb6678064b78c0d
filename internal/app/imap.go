package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/imapserver"
)

// buildIMAP creates the IMAP servers: "imap" (143, STARTTLS; LOGIN refused before TLS unless
// auth.allow_plaintext) and "imaps" (993, implicit TLS). Both share the store, the auth service (one lockout
// with SMTP) and the certificate manager.
func (a *App) buildIMAP(cfg *config.Config) error {
	for _, m := range []struct {
		name     string
		implicit bool
		addrs    []string
	}{
		{"imap", false, cfg.Listen.IMAP},
		{"imaps", true, cfg.Listen.IMAPS},
	} {
		if len(m.addrs) == 0 {
			continue
		}
		srv, err := imapserver.New(imapserver.Options{
			Hostname:           cfg.Hostname,
			TLSConfig:          a.tls.TLSConfig(),
			ImplicitTLS:        m.implicit,
			AllowPlaintextAuth: cfg.Auth.AllowPlaintext,
			MaxMessageBytes:    cfg.MaxMessageBytes(),
			MaxConnections:     cfg.IMAP.MaxConnections,
			MaxConnsPerIP:      cfg.IMAP.MaxConnsPerIP,
			Store:              a.store,
			Auth:               a.auth,
			JunkTrainer:        a.filters.junkTrainer(),
			Logger:             a.log.With("service", m.name),
		})
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		svc := service{name: m.name, server: srv, serve: func(ln net.Listener) error {
			if err := srv.Serve(ln); !errors.Is(err, imapserver.ErrServerClosed) {
				return err
			}
			return nil
		}}
		for _, addr := range m.addrs {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				closeAll(svc.listeners)
				return fmt.Errorf("listen %s on %s: %w", m.name, addr, err)
			}
			if m.implicit {
				ln = tls.NewListener(ln, a.tls.TLSConfig())
			}
			svc.listeners = append(svc.listeners, ln)
		}
		a.services = append(a.services, svc)
	}
	return nil
}
