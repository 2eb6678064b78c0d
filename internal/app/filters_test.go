package app

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/smtpserver"
	"github.com/postern/postern/internal/store/sqlite"
)

func TestBuildFilters(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "p.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &App{store: st}
	a.log = slog.New(slog.DiscardHandler)

	cfg := config.Default()
	cfg.Antispam.DNSBL = []string{"bl.example=2", "weak.example=0.5"}
	cfg.Antispam.Greylist = true
	cfg.Antispam.Spamd = "127.0.0.1:783"
	cfg.Antispam.Milter = []string{"tcp:127.0.0.1:8891", "unix:/run/m.sock"}
	cfg.Antivirus.Clamd = "tcp:127.0.0.1:3310"
	cfg.RateLimit.PerUserHour = 100
	f, err := a.buildFilters(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if f.classifier == nil || f.junkTrainer() == nil {
		t.Error("bayes not built")
	}
	want := []string{"ratelimit", "dnsbl", "greylist", "spf", "dkim", "arc", "dmarc", "rules", "clamav", "spamd",
		"milter:tcp:127.0.0.1:8891", "milter:unix:/run/m.sock", "attachments"}
	if !slices.Equal(f.mxChecks, want) {
		t.Errorf("MX checks %q, want %q", f.mxChecks, want)
	}
	if !slices.Equal(f.submissionChecks, []string{"ratelimit", "clamav", "attachments"}) {
		t.Errorf("submission checks %q", f.submissionChecks)
	}
	if f.forMode(smtpserver.ModeMX) == nil || f.forMode(smtpserver.ModeSubmission) == nil {
		t.Error("pipelines missing")
	}

	// Everything off: no pipeline at all (a nil interface, not a nil pointer in one).
	cfg = config.Default()
	cfg.Antispam.SPF, cfg.Antispam.DKIMVerify, cfg.Antispam.DMARC, cfg.Antispam.ARC, cfg.Antispam.Rules = false, false, false, false, false
	cfg.Antispam.Bayes = false
	cfg.Antivirus.DangerousExtensions, cfg.Antivirus.DangerousContentTypes = nil, nil
	if f, err = a.buildFilters(cfg); err != nil {
		t.Fatal(err)
	}
	if f.forMode(smtpserver.ModeMX) != nil || f.forMode(smtpserver.ModeSubmissions) != nil || f.junkTrainer() != nil {
		t.Errorf("checks built with everything off: %q %q", f.mxChecks, f.submissionChecks)
	}
}
