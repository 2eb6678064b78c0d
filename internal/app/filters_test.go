package app

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/maillog"
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

// dmarc_policy = "none" records a DMARC failure without refusing or filing into Junk.
func TestDMARCRecordOnly(t *testing.T) {
	res := &dns.Fake{TXT: map[string][]string{"_dmarc.spoof.example": {"v=DMARC1; p=reject"}}}
	cfg := config.Default()
	cfg.Antispam.DMARCPolicy = "none"
	m := &checkMaker{cfg: cfg, res: res, log: slog.New(slog.DiscardHandler)}
	chs, err := m.dmarc()
	if err != nil || len(chs) != 1 {
		t.Fatal(chs, err)
	}
	msg := "From: <ceo@spoof.example>\r\nSubject: x\r\n\r\nhi\r\n"
	var h textproto.Header
	h.Add("From", "<ceo@spoof.example>")
	txn := &filter.Txn{Conn: &filter.Conn{IP: netip.MustParseAddr("192.0.2.1")}, Values: map[string]any{}}
	v := chs[0].(filter.DataChecker).Data(context.Background(), txn, &filter.Message{Size: int64(len(msg)), Header: h,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(msg)), nil }})
	if v.Action != filter.Accept || v.Junk || len(txn.Results) != 1 {
		t.Errorf("verdict %+v, results %+v", v, txn.Results)
	}
	cfg.Antispam.DMARCPolicy = "apply"
	chs, _ = m.dmarc()
	txn = &filter.Txn{Conn: &filter.Conn{IP: netip.MustParseAddr("192.0.2.1")}, Values: map[string]any{}}
	if v := chs[0].(filter.DataChecker).Data(context.Background(), txn, &filter.Message{Size: int64(len(msg)), Header: h,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(msg)), nil }}); v.Action != filter.Reject {
		t.Errorf("applied policy: %+v", v)
	}
}

func TestFilterLogger(t *testing.T) {
	var b strings.Builder
	log := filterLogger(maillog.New(&b, func() time.Time { return time.Unix(0, 0) }))
	log(filter.Event{QueueID: "Q1", Stage: "data", Check: "rspamd", Verdict: filter.Verdict{Reason: "no action"}})
	log(filter.Event{QueueID: "Q1", Stage: "rcpt", Check: "greylist", Verdict: filter.Verdict{Action: filter.Tempfail, Reason: "first attempt"}})
	log(filter.Event{QueueID: "Q1", Stage: "data", Check: "rules", Verdict: filter.Verdict{Action: filter.Tag, Score: 2.5, Junk: true}})
	want := `1970-01-01T00:00:00Z Q1 filter status="451 4.7.1" detail="greylist at rcpt: tempfail: first attempt"
1970-01-01T00:00:00Z Q1 filter detail="rules at data: tag score=2.5 junk"
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
