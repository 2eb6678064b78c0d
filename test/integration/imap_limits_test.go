//go:build integration

package integration

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// TestIMAPConnectionLimitsFromConfig: [imap] max_connections_per_ip reaches the IMAP listener: with 2, a third
// connection from one address is refused with BYE while the first two are served.
func TestIMAPConnectionLimitsFromConfig(t *testing.T) {
	s := newServer(t, serverOptions{imap: true, extra: "[imap]\nmax_connections_per_ip = 2\n"})
	greet := func() string {
		c, err := net.DialTimeout("tcp", s.addr(s.ports.IMAP), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("greeting: %v", err)
		}
		return l
	}
	for i := range 2 {
		if l := greet(); !strings.HasPrefix(l, "* OK") {
			t.Fatalf("connection %d: %q", i+1, l)
		}
	}
	if l := greet(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("third connection from one address: %q, want BYE", l)
	}
}
