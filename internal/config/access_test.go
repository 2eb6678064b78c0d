package config

import (
	"strings"
	"testing"
)

func TestAccessLimits(t *testing.T) {
	c := Default()
	if c.IMAP.MaxConnections != 10000 || c.POP3.MaxConnsPerIP != 20 {
		t.Fatalf("defaults: imap %+v pop3 %+v", c.IMAP, c.POP3)
	}
	c.IMAP.MaxConnections = 0
	c.POP3.MaxConnsPerIP = -1
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "imap.max_connections") || !strings.Contains(err.Error(), "pop3.max_connections_per_ip") {
		t.Fatalf("Validate = %v", err)
	}
}
