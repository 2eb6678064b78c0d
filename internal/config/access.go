package config

import "fmt"

// Mailbox access limits: the IMAP and POP3 listeners (plain and TLS) each take up to MaxConnections sessions in
// all and MaxConnsPerIP from one client address. IMAP clients keep one connection per watched folder (IDLE), so
// its defaults are higher than SMTP's. When a listener is full, a new client takes the slot of the session idle
// the longest (a slowloris cannot lock users out).
type Access struct {
	MaxConnections int `toml:"max_connections"`
	MaxConnsPerIP  int `toml:"max_connections_per_ip"`
}

func defaultIMAP() Access { return Access{MaxConnections: 10000, MaxConnsPerIP: 50} }
func defaultPOP3() Access { return Access{MaxConnections: 1000, MaxConnsPerIP: 20} }

// validateAccess checks [imap] and [pop3].
func (c *Config) validateAccess() []error {
	var errs []error
	for name, a := range map[string]Access{"imap": c.IMAP, "pop3": c.POP3} {
		if a.MaxConnections < 1 {
			errs = append(errs, fmt.Errorf("%s.max_connections: %d is below 1", name, a.MaxConnections))
		}
		if a.MaxConnsPerIP < 1 {
			errs = append(errs, fmt.Errorf("%s.max_connections_per_ip: %d is below 1", name, a.MaxConnsPerIP))
		}
	}
	return errs
}
