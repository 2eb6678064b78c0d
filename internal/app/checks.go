package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/arc"
	"github.com/postern/postern/internal/filter/attachments"
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
	"github.com/postern/postern/internal/store"
)

// checkMaker builds each check from the config: [antispam], [antivirus] and [ratelimit] mapped onto the check
// packages' Options (their package docs name the keys). A builder returns no check when the config leaves it off.
type checkMaker struct {
	cfg   *config.Config
	res   dns.Resolver
	kv    store.KV
	store store.Store
	log   *slog.Logger
}

// builders maps each check name of mxOrder and antispam.submission_checks to its builder.
func (m *checkMaker) builders() map[string]checkBuilder {
	return map[string]checkBuilder{
		"ratelimit": m.ratelimit, "dnsbl": m.dnsbl, "greylist": m.greylist,
		"spf": m.spf, "dkim": m.dkim, "arc": m.arc, "dmarc": m.dmarc, "rules": m.rules,
		"clamav": m.clamav, "spamd": m.spamd, "rspamd": m.rspamd, "milter": m.milter, "attachments": m.attachments,
	}
}

func (m *checkMaker) logger(name string) *slog.Logger { return m.log.With("check", name) }

// one wraps a constructor's result.
func one[C filter.Check](ch C, err error) ([]filter.Check, error) {
	if err != nil {
		return nil, err
	}
	return []filter.Check{ch}, nil
}

func size(s string) int64 { n, _ := config.ParseSize(s); return n } // Validate has checked it

func (m *checkMaker) ratelimit() ([]filter.Check, error) {
	rl := m.cfg.RateLimit
	if rl.PerIPHour == 0 && rl.PerSenderHour == 0 && rl.PerUserHour == 0 && rl.DomainDay == 0 && len(rl.DomainDayCaps) == 0 {
		return nil, nil
	}
	return one(ratelimit.New(ratelimit.Options{PerIP: rl.PerIPHour, PerSender: rl.PerSenderHour, PerUser: rl.PerUserHour,
		DomainDaily: rl.DomainDay, DomainCaps: rl.DomainDayCaps, KV: m.kv, Logger: m.logger("ratelimit")}))
}

func (m *checkMaker) dnsbl() ([]filter.Check, error) {
	as := m.cfg.Antispam
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
	return one(dnsbl.New(dnsbl.Options{Resolver: m.res, Zones: zones, RejectWeight: as.DNSBLRejectWeight,
		ScorePerWeight: as.DNSBLScore, Logger: m.logger("dnsbl")}))
}

func (m *checkMaker) greylist() ([]filter.Check, error) {
	as := m.cfg.Antispam
	if !as.Greylist {
		return nil, nil
	}
	if m.kv == nil {
		return nil, fmt.Errorf("the %T store keeps no greylisting state", m.store)
	}
	return one(greylist.New(greylist.Options{KV: m.kv, Delay: config.MustDuration(as.GreylistDelay),
		RetryWindow: config.MustDuration(as.GreylistRetryWindow), MaxAge: config.MustDuration(as.GreylistMaxAge),
		WhitelistAfter: as.GreylistWhitelistAfter, Logger: m.logger("greylist")}))
}

func (m *checkMaker) spf() ([]filter.Check, error) {
	as := m.cfg.Antispam
	if !as.SPF {
		return nil, nil
	}
	return one(spf.New(spf.Options{Resolver: m.res, RejectFail: as.SPFRejectFail,
		TempErrorTempfail: as.SPFTempError == "tempfail", FailScore: as.SPFFailScore,
		SoftFailScore: as.SPFSoftFailScore, PermErrorScore: as.SPFPermErrorScore, Logger: m.logger("spf")}))
}

func (m *checkMaker) dkim() ([]filter.Check, error) {
	as := m.cfg.Antispam
	if !as.DKIMVerify {
		return nil, nil
	}
	return one(dkim.New(dkim.Options{Resolver: m.res, MaxSignatures: as.DKIMMaxSignatures, FailScore: as.DKIMFailScore,
		Logger: m.logger("dkim")}))
}

func (m *checkMaker) arc() ([]filter.Check, error) {
	if !m.cfg.Antispam.ARC {
		return nil, nil
	}
	return one(arc.New(arc.Options{Resolver: m.res, Logger: m.logger("arc")}))
}

func (m *checkMaker) dmarc() ([]filter.Check, error) {
	as := m.cfg.Antispam
	if !as.DMARC {
		return nil, nil
	}
	ch, err := dmarc.New(dmarc.Options{Resolver: m.res, RejectAsQuarantine: as.DMARCPolicy == "junk",
		FailScore: as.DMARCFailScore, TrustedSealers: as.ARCTrustedSealers, Logger: m.logger("dmarc")})
	if err != nil || as.DMARCPolicy != "none" {
		return one(ch, err)
	}
	return []filter.Check{recordOnly{ch}}, nil
}

// recordOnly runs DMARC for its Authentication-Results only (antispam.dmarc_policy = "none"): a failure's
// refusal or Junk filing is dropped, its score kept.
type recordOnly struct{ *dmarc.Check }

func (r recordOnly) Data(ctx context.Context, t *filter.Txn, msg *filter.Message) filter.Verdict {
	v := r.Check.Data(ctx, t, msg)
	if v.Action == filter.Reject || v.Action == filter.Tempfail || v.Junk {
		v = filter.Verdict{Action: filter.Tag, Score: v.Score, Symbol: v.Symbol, Reason: v.Reason + " (policy not applied)"}
		if v.Score == 0 {
			v.Action = filter.Accept
		}
	}
	return v
}

func (m *checkMaker) rules() ([]filter.Check, error) {
	if !m.cfg.Antispam.Rules {
		return nil, nil
	}
	return one(scorerules.New(scorerules.Options{Scores: m.cfg.Antispam.RuleScores, Logger: m.logger("rules")}))
}

func (m *checkMaker) clamav() ([]filter.Check, error) {
	av := m.cfg.Antivirus
	if av.Clamd == "" {
		return nil, nil
	}
	return one(clamav.New(clamav.Options{Address: av.Clamd, OnError: av.OnError,
		Timeout: config.MustDuration(av.ClamdTimeout), MaxSize: size(av.ClamdMaxSize), Logger: m.logger("clamav")}))
}

func (m *checkMaker) spamd() ([]filter.Check, error) {
	as := m.cfg.Antispam
	if as.Spamd == "" {
		return nil, nil
	}
	return one(spamd.New(spamd.Options{Address: as.Spamd, OnError: as.OnError, Timeout: config.MustDuration(as.SpamdTimeout),
		MaxSize: size(as.SpamdMaxSize), User: as.SpamdUser, Logger: m.logger("spamd")}))
}

func (m *checkMaker) rspamd() ([]filter.Check, error) {
	as := m.cfg.Antispam
	if as.Rspamd == "" {
		return nil, nil
	}
	return one(rspamd.New(rspamd.Options{URL: as.Rspamd, OnError: as.OnError, Timeout: config.MustDuration(as.RspamdTimeout),
		Password: as.RspamdPassword, MaxSize: size(as.RspamdMaxSize), Logger: m.logger("rspamd")}))
}

// milter makes one check per configured milter, in order.
func (m *checkMaker) milter() ([]filter.Check, error) {
	as := m.cfg.Antispam
	var chs []filter.Check
	for _, addr := range as.Milter {
		ch, err := milter.New(milter.Options{Address: addr, OnError: as.OnError, Timeout: config.MustDuration(as.MilterTimeout),
			Hostname: m.cfg.Hostname, Logger: m.logger("milter")})
		if err != nil {
			return nil, err
		}
		chs = append(chs, ch)
	}
	return chs, nil
}

func (m *checkMaker) attachments() ([]filter.Check, error) {
	av := m.cfg.Antivirus
	if len(av.DangerousExtensions) == 0 && len(av.DangerousContentTypes) == 0 {
		return nil, nil
	}
	exts := make([]string, 0, len(av.DangerousExtensions))
	for _, e := range av.DangerousExtensions {
		exts = append(exts, strings.TrimPrefix(e, "."))
	}
	// Empty lists must stay empty: nil would mean the package's defaults.
	return one(attachments.New(attachments.Options{Extensions: exts,
		ContentTypes: append([]string{}, av.DangerousContentTypes...), SkipArchives: !av.ScanArchives,
		RejectEncryptedArchives: av.RejectEncryptedArchives, Logger: m.logger("attachments")}))
}
