package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/bayes"
	"github.com/postern/postern/internal/filter/engine"
	"github.com/postern/postern/internal/imapserver"
	"github.com/postern/postern/internal/maillog"
	"github.com/postern/postern/internal/smtpserver"
	"github.com/postern/postern/internal/store"
)

// mxOrder is the order of the MX listener's checks (docs/filters.md): the cheap connection-level refusals
// first, then the authentication results that later checks read (DMARC needs SPF and DKIM), then content
// scoring, then the external engines, which see the verdicts so far.
var mxOrder = []string{"ratelimit", "dnsbl", "greylist", "spf", "dkim", "arc", "dmarc", "rules", "clamav", "spamd",
	"rspamd", "milter", "attachments"}

// filters are the inbound checks of every SMTP listener and what delivery and IMAP use of them.
type filters struct {
	mx, submission *filter.Pipeline // nil: no checks
	// mxChecks and submissionChecks name the checks of each pipeline, in order (logged at start).
	mxChecks, submissionChecks []string
	classifier                 *bayes.Classifier
	trainer                    *bayes.Trainer
	kv                         store.KV // greylisting and send counters; purged by Start's background job
	// engines are the checks whose external engine can be pinged (clamd, spamd, rspamd), asked at Start.
	engines []engine.Pinger
}

// forMode returns the pipeline of an SMTP service as smtpserver's interface (nil when there are no checks: a
// nil *Pipeline must not become a non-nil interface).
func (f *filters) forMode(m smtpserver.Mode) smtpserver.Filters {
	p := f.submission
	if m == smtpserver.ModeMX {
		p = f.mx
	}
	if p == nil {
		return nil
	}
	return p
}

// junkTrainer is the IMAP hook that teaches the per-user filter, nil when it is off.
func (f *filters) junkTrainer() imapserver.JunkTrainer {
	if f.trainer == nil {
		return nil
	}
	return f.trainer
}

// checkBuilder makes one configured check (several for milter); none when the config leaves it off.
type checkBuilder func() ([]filter.Check, error)

// buildFilters makes every configured check once (a check is shared by the listeners that use it, so the rate
// limits count across them) and the two pipelines: the MX listener's, in mxOrder, and the submission listeners',
// from antispam.submission_checks. Submission mail is not labelled: its pipeline has no authserv-id, so it
// neither adds nor strips Authentication-Results, and no X-Spam headers.
func (a *App) buildFilters(cfg *config.Config) (*filters, error) {
	f := &filters{}
	if kv, ok := a.store.(store.KV); ok {
		f.kv = kv
	}
	res, err := a.dnsClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	if cfg.Antispam.Bayes {
		if f.classifier, err = NewBayes(a.store, bayes.Options{Threshold: cfg.Antispam.BayesThreshold,
			MinSpam: cfg.Antispam.BayesMinSpam, MinHam: cfg.Antispam.BayesMinHam, Logger: a.log.With("check", "bayes")}); err != nil {
			return nil, fmt.Errorf("bayes: %w", err)
		}
		f.trainer = NewJunkTrainer(a.store, f.classifier, a.log.With("service", "bayes-trainer"))
	}
	builders := (&checkMaker{cfg: cfg, res: res, kv: f.kv, store: a.store, log: a.log}).builders()
	built := map[string][]filter.Check{}
	get := func(name string) ([]filter.Check, error) {
		if chs, ok := built[name]; ok {
			return chs, nil
		}
		b := builders[name]
		if b == nil {
			return nil, nil // not built into this version yet
		}
		chs, err := b()
		if err != nil {
			return nil, fmt.Errorf("filter %s: %w", name, err)
		}
		built[name] = chs
		return chs, nil
	}
	pipeline := func(names []string, used *[]string, o filter.Options) (*filter.Pipeline, error) {
		for _, n := range names {
			chs, err := get(n)
			if err != nil {
				return nil, err
			}
			o.Checks = append(o.Checks, chs...)
			for _, ch := range chs {
				*used = append(*used, ch.Name())
			}
		}
		if len(o.Checks) == 0 {
			return nil, nil
		}
		o.CheckTimeout = config.MustDuration(cfg.Antispam.CheckTimeout)
		o.Log = filterLogger(a.mailLog)
		o.Logger = a.log.With("service", "filter")
		return filter.New(o), nil
	}
	as := cfg.Antispam
	if f.mx, err = pipeline(mxOrder, &f.mxChecks, filter.Options{AuthServID: cfg.Hostname, JunkScore: as.JunkScore,
		RejectScore: as.RejectScore, SpamHeaders: as.SpamHeaders}); err != nil {
		return nil, err
	}
	if f.submission, err = pipeline(as.SubmissionChecks, &f.submissionChecks, filter.Options{RejectScore: as.RejectScore}); err != nil {
		return nil, err
	}
	f.engines = pingers(built)
	a.log.Info("inbound checks", "smtp", strings.Join(f.mxChecks, ","), "submission", strings.Join(f.submissionChecks, ","),
		"user_classifier", f.classifier != nil)
	return f, nil
}

// pingers picks the checks that can ping their engine, in mxOrder.
func pingers(built map[string][]filter.Check) []engine.Pinger {
	var out []engine.Pinger
	for _, name := range mxOrder {
		for _, ch := range built[name] {
			if p, ok := ch.(engine.Pinger); ok {
				out = append(out, p)
			}
		}
	}
	return out
}

// FilterEngines builds the configured checks that call an external engine and can ask whether it answers
// (clamav, spamd, rspamd), for `postern check`.
func FilterEngines(cfg *config.Config) ([]engine.Pinger, error) {
	m := &checkMaker{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	built := map[string][]filter.Check{}
	for name, b := range m.builders() {
		if name != "clamav" && name != "spamd" && name != "rspamd" {
			continue
		}
		chs, err := b()
		if err != nil {
			return nil, fmt.Errorf("filter %s: %w", name, err)
		}
		built[name] = chs
	}
	return pingers(built), nil
}

// enginePingTimeout bounds the start-up ping of one engine.
const enginePingTimeout = 10 * time.Second

// pingEngines asks each configured engine whether it answers, in the background, and logs a warning naming
// the one that does not. The server starts anyway: on_error decides what mail does while an engine is down.
func (a *App) pingEngines(ctx context.Context) {
	for _, p := range a.filters.engines {
		a.bg.Add(1)
		go func() {
			defer a.bg.Done()
			ctx, cancel := context.WithTimeout(ctx, enginePingTimeout)
			defer cancel()
			if err := p.Ping(ctx); err != nil {
				if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
					a.log.Warn("filter engine does not answer; on_error decides what mail does meanwhile",
						"check", p.Name(), "err", err)
				}
				return
			}
			a.log.Info("filter engine answers", "check", p.Name())
		}()
	}
}

// filterLogger writes the checks' verdicts that are not a plain accept to the mail log: refusals, tags, scores.
// An accept that only explains itself (an engine's "no action") stays out of it.
func filterLogger(ml *maillog.Logger) func(filter.Event) {
	return func(e filter.Event) {
		v := e.Verdict
		if v.Action == filter.Accept && v.Score == 0 && !v.Junk {
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s at %s: %s", e.Check, e.Stage, v.Action)
		if v.Score != 0 {
			fmt.Fprintf(&b, " score=%.1f", v.Score)
		}
		if v.Junk {
			b.WriteString(" junk")
		}
		if v.Reason != "" {
			b.WriteString(": " + v.Reason)
		}
		ev := maillog.Event{QueueID: e.QueueID, Event: "filter", Detail: b.String()}
		if v.Action >= filter.Tempfail {
			code, enh, _ := v.Reply(e.Stage)
			ev.Status = fmt.Sprintf("%d %s", code, enh)
		}
		ml.Log(ev)
	}
}

// purgeKV removes expired greylisting and counter entries hourly.
func (a *App) purgeKV(ctx context.Context, kv store.KV) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := kv.KVPurge(ctx, time.Now()); err != nil && ctx.Err() == nil {
			a.log.Warn("purge filter state", "err", err)
		} else if n > 0 {
			a.log.Debug("purged expired filter state", "entries", n)
		}
	}
}
