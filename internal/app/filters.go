package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/arc"
	"github.com/postern/postern/internal/filter/attachments"
	"github.com/postern/postern/internal/filter/bayes"
	"github.com/postern/postern/internal/filter/clamav"
	"github.com/postern/postern/internal/filter/dkim"
	"github.com/postern/postern/internal/filter/dmarc"
	"github.com/postern/postern/internal/filter/dnsbl"
	"github.com/postern/postern/internal/filter/greylist"
	"github.com/postern/postern/internal/filter/milter"
	"github.com/postern/postern/internal/filter/ratelimit"
	"github.com/postern/postern/internal/filter/rspamd"
	scorerules "github.com/postern/postern/internal/filter/rules"
	"github.com/postern/postern/internal/filter/spamd"
	"github.com/postern/postern/internal/filter/spf"
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
	res, err := dns.NewClient(dns.ClientOptions{Server: cfg.DNS.Resolver})
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
	builders := a.checkBuilders(cfg, res, f.kv)
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
	a.log.Info("inbound checks", "smtp", strings.Join(f.mxChecks, ","), "submission", strings.Join(f.submissionChecks, ","),
		"user_classifier", f.classifier != nil)
	return f, nil
}

// checkBuilders maps each check name to what builds it from cfg (nil result: the config leaves it off).
func (a *App) checkBuilders(cfg *config.Config, res dns.Resolver, kv store.KV) map[string]checkBuilder {
	as, av, rl := cfg.Antispam, cfg.Antivirus, cfg.RateLimit
	log := func(name string) *slog.Logger { return a.log.With("check", name) }
	one := func(ch filter.Check, err error) ([]filter.Check, error) {
		if err != nil {
			return nil, err
		}
		return []filter.Check{ch}, nil
	}
	dur := config.MustDuration
	size := func(s string) int64 { n, _ := config.ParseSize(s); return n }
	return map[string]checkBuilder{
		"ratelimit": func() ([]filter.Check, error) {
			if rl.PerIPHour == 0 && rl.PerSenderHour == 0 && rl.PerUserHour == 0 && rl.DomainDay == 0 && len(rl.DomainDayCaps) == 0 {
				return nil, nil
			}
			return one(ratelimit.New(ratelimit.Options{PerIP: rl.PerIPHour, PerSender: rl.PerSenderHour,
				PerUser: rl.PerUserHour, DomainDaily: rl.DomainDay, DomainCaps: rl.DomainDayCaps, KV: kv, Logger: log("ratelimit")}))
		},
		"dnsbl": func() ([]filter.Check, error) {
			if len(as.DNSBL) == 0 {
				return nil, nil
			}
			var zones []dnsbl.Zone
			for _, s := range as.DNSBL {
				z, err := dnsbl.ParseZone(s)
				if err != nil {
					return nil, err
				}
				zones = append(zones, z)
			}
			return one(dnsbl.New(dnsbl.Options{Resolver: res, Zones: zones, RejectWeight: as.DNSBLRejectWeight,
				ScorePerWeight: as.DNSBLScore, Logger: log("dnsbl")}))
		},
		"greylist": func() ([]filter.Check, error) {
			if !as.Greylist {
				return nil, nil
			}
			if kv == nil {
				return nil, fmt.Errorf("the %T store keeps no greylisting state", a.store)
			}
			return one(greylist.New(greylist.Options{KV: kv, Delay: dur(as.GreylistDelay),
				RetryWindow: dur(as.GreylistRetryWindow), MaxAge: dur(as.GreylistMaxAge),
				WhitelistAfter: as.GreylistWhitelistAfter, Logger: log("greylist")}))
		},
		"spf": func() ([]filter.Check, error) {
			if !as.SPF {
				return nil, nil
			}
			return one(spf.New(spf.Options{Resolver: res, RejectFail: as.SPFRejectFail,
				TempErrorTempfail: as.SPFTempError == "tempfail", FailScore: as.SPFFailScore,
				SoftFailScore: as.SPFSoftFailScore, PermErrorScore: as.SPFPermErrorScore, Logger: log("spf")}))
		},
		"dkim": func() ([]filter.Check, error) {
			if !as.DKIMVerify {
				return nil, nil
			}
			return one(dkim.New(dkim.Options{Resolver: res, MaxSignatures: as.DKIMMaxSignatures, FailScore: as.DKIMFailScore,
				Logger: log("dkim")}))
		},
		"arc": func() ([]filter.Check, error) {
			if !as.ARC {
				return nil, nil
			}
			return one(arc.New(arc.Options{Resolver: res, Logger: log("arc")}))
		},
		"rules": func() ([]filter.Check, error) {
			if !as.Rules {
				return nil, nil
			}
			return one(scorerules.New(scorerules.Options{Scores: as.RuleScores, Logger: log("rules")}))
		},
		"dmarc": func() ([]filter.Check, error) {
			if !as.DMARC {
				return nil, nil
			}
			ch, err := dmarc.New(dmarc.Options{Resolver: res, RejectAsQuarantine: as.DMARCPolicy == "junk",
				FailScore: as.DMARCFailScore, Logger: log("dmarc")})
			if err != nil || as.DMARCPolicy != "none" {
				return one(ch, err)
			}
			return []filter.Check{recordOnly{ch}}, nil
		},
		"milter": func() ([]filter.Check, error) {
			var chs []filter.Check
			for _, addr := range as.Milter {
				ch, err := milter.New(milter.Options{Address: addr, OnError: as.OnError, Timeout: dur(as.MilterTimeout),
					Hostname: cfg.Hostname, Logger: log("milter")})
				if err != nil {
					return nil, err
				}
				chs = append(chs, ch)
			}
			return chs, nil
		},
		"attachments": func() ([]filter.Check, error) {
			if len(av.DangerousExtensions) == 0 && len(av.DangerousContentTypes) == 0 {
				return nil, nil
			}
			exts := make([]string, 0, len(av.DangerousExtensions))
			for _, e := range av.DangerousExtensions {
				exts = append(exts, strings.TrimPrefix(e, "."))
			}
			// Empty lists must stay empty (nil would mean the package's defaults).
			return one(attachments.New(attachments.Options{Extensions: exts,
				ContentTypes: append([]string{}, av.DangerousContentTypes...), SkipArchives: !av.ScanArchives,
				RejectEncryptedArchives: av.RejectEncryptedArchives, Logger: log("attachments")}))
		},
		"clamav": func() ([]filter.Check, error) {
			if av.Clamd == "" {
				return nil, nil
			}
			return one(clamav.New(clamav.Options{Address: av.Clamd, OnError: av.OnError, Timeout: dur(av.ClamdTimeout),
				Logger: log("clamav")}))
		},
		"spamd": func() ([]filter.Check, error) {
			if as.Spamd == "" {
				return nil, nil
			}
			return one(spamd.New(spamd.Options{Address: as.Spamd, OnError: as.OnError, Timeout: dur(as.SpamdTimeout),
				MaxSize: size(as.SpamdMaxSize), User: as.SpamdUser, Logger: log("spamd")}))
		},
		"rspamd": func() ([]filter.Check, error) {
			if as.Rspamd == "" {
				return nil, nil
			}
			return one(rspamd.New(rspamd.Options{URL: as.Rspamd, OnError: as.OnError, Timeout: dur(as.RspamdTimeout),
				Password: as.RspamdPassword, MaxSize: size(as.RspamdMaxSize), Logger: log("rspamd")}))
		},
	}
}

// recordOnly runs DMARC for its Authentication-Results only (antispam.dmarc_policy = "none"): a failure's
// refusal or Junk filing is dropped, its score kept.
type recordOnly struct{ *dmarc.Check }

func (r recordOnly) Data(ctx context.Context, t *filter.Txn, m *filter.Message) filter.Verdict {
	v := r.Check.Data(ctx, t, m)
	if v.Action == filter.Reject || v.Action == filter.Tempfail || v.Junk {
		v = filter.Verdict{Action: filter.Tag, Score: v.Score, Symbol: v.Symbol, Reason: v.Reason + " (policy not applied)"}
		if v.Score == 0 {
			v.Action = filter.Accept
		}
	}
	return v
}

// filterLogger writes the checks' verdicts that are not a plain accept to the mail log.
func filterLogger(ml *maillog.Logger) func(filter.Event) {
	return func(e filter.Event) {
		v := e.Verdict
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
