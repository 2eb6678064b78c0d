package app

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/filter/engine/enginetest"
)

// syncBuffer is a log destination the ping goroutines may write concurrently.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPingEngines: at start each configured engine is pinged; one that answers is logged as such, one that does
// not gets a warning naming it, and neither stops the server.
func TestPingEngines(t *testing.T) {
	clamd := enginetest.Serve(t, "tcp", func(c net.Conn) {
		buf := make([]byte, 6)
		if _, err := io.ReadFull(c, buf); err == nil && string(buf) == "zPING\x00" {
			io.WriteString(c, "PONG\x00")
		}
	})
	cfg := config.Default()
	cfg.Antivirus.Clamd = clamd
	cfg.Antispam.Spamd = enginetest.DeadAddr(t)
	cfg.Antispam.Rspamd = "http://" + enginetest.DeadAddr(t)

	engines, err := FilterEngines(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range engines {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "clamav,spamd,rspamd" {
		t.Fatalf("engines %q", names)
	}

	var logs syncBuffer
	a := &App{log: slog.New(slog.NewTextHandler(&logs, nil)), filters: &filters{engines: engines}}
	a.pingEngines(context.Background())
	a.bg.Wait()
	out := logs.String()
	for _, want := range []string{`msg="filter engine answers" check=clamav`,
		`level=WARN msg="filter engine does not answer; on_error decides what mail does meanwhile" check=spamd`,
		`level=WARN msg="filter engine does not answer; on_error decides what mail does meanwhile" check=rspamd`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}

	// Nothing configured: nothing to ping.
	if engines, err := FilterEngines(config.Default()); err != nil || len(engines) != 0 {
		t.Errorf("default config: %d engines, %v", len(engines), err)
	}
}
