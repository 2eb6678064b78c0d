package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Antivirus configures the virus scan (clamd) and the dangerous-attachment check.
type Antivirus struct {
	Clamd        string `toml:"clamd"`         // "tcp:127.0.0.1:3310" or "unix:/run/clamav/clamd.ctl"; "": no scan
	OnError      string `toml:"on_error"`      // clamd unreachable: "tempfail" or "accept"
	ClamdTimeout string `toml:"clamd_timeout"` // one scan
	// ClamdMaxSize is clamd's StreamMaxLength (clamd.conf; its default is 25M): a larger message is not sent and
	// passes unscanned, logged, because clamd would refuse it. Raise both together; "0" sends every message.
	ClamdMaxSize string `toml:"clamd_max_size"`
	// DangerousExtensions and DangerousContentTypes are attachments refused at DATA without asking clamd (both
	// []: off). ScanArchives looks at the names inside zip archives too; RejectEncryptedArchives refuses zip
	// archives with encrypted members, whose content no scanner can see.
	DangerousExtensions     []string `toml:"dangerous_extensions"`
	DangerousContentTypes   []string `toml:"dangerous_content_types"`
	ScanArchives            bool     `toml:"scan_archives"`
	RejectEncryptedArchives bool     `toml:"reject_encrypted_archives"`
}

// Antispam configures the spam checks of the MX listener.
type Antispam struct {
	// DNSBL zones, "zone" or "zone=weight"; a client whose listings weigh DNSBLRejectWeight or more is refused,
	// a lighter listing adds DNSBLScore per unit of weight to the spam score.
	DNSBL             []string `toml:"dnsbl"`
	DNSBLRejectWeight float64  `toml:"dnsbl_reject_weight"`
	DNSBLScore        float64  `toml:"dnsbl_score"`

	Spamd          string   `toml:"spamd"`  // "host:port" of SpamAssassin's spamd
	Rspamd         string   `toml:"rspamd"` // base URL of rspamd
	Milter         []string `toml:"milter"` // "tcp:host:port" or "unix:/path"
	OnError        string   `toml:"on_error"`
	SpamdTimeout   string   `toml:"spamd_timeout"`
	SpamdMaxSize   string   `toml:"spamd_max_size"`
	SpamdUser      string   `toml:"spamd_user"`
	RspamdTimeout  string   `toml:"rspamd_timeout"`
	RspamdPassword string   `toml:"rspamd_password"`
	RspamdMaxSize  string   `toml:"rspamd_max_size"`
	MilterTimeout  string   `toml:"milter_timeout"`

	Greylist               bool   `toml:"greylist"`
	GreylistDelay          string `toml:"greylist_delay"`
	GreylistRetryWindow    string `toml:"greylist_retry_window"`
	GreylistMaxAge         string `toml:"greylist_max_age"`
	GreylistWhitelistAfter int    `toml:"greylist_whitelist_after"`

	SPF               bool    `toml:"spf"`
	SPFRejectFail     bool    `toml:"spf_reject_fail"`
	SPFFailScore      float64 `toml:"spf_fail_score"`
	SPFSoftFailScore  float64 `toml:"spf_softfail_score"`
	SPFPermErrorScore float64 `toml:"spf_permerror_score"`
	SPFTempError      string  `toml:"spf_temperror"` // "accept" or "tempfail"

	DKIMVerify        bool    `toml:"dkim_verify"`
	DKIMMaxSignatures int     `toml:"dkim_max_signatures"`
	DKIMFailScore     float64 `toml:"dkim_fail_score"`
	ARC               bool    `toml:"arc"`
	DMARC             bool    `toml:"dmarc"`
	// DMARCPolicy: "apply" honours the sender's p= (reject: 550, quarantine: Junk); "junk" files both into
	// Junk; "none" only records the result.
	DMARCPolicy    string  `toml:"dmarc_policy"`
	DMARCFailScore float64 `toml:"dmarc_fail_score"` // added when DMARC fails, whatever the policy
	// ARCTrustedSealers are ARC sealer domains (mailing lists, forwarders) whose passing ARC chain spares a
	// message that fails DMARC its policy (RFC 8617 7.2.1); needs arc = true.
	ARCTrustedSealers []string `toml:"arc_trusted_sealers"`

	Rules bool `toml:"rules"` // the built-in scoring rules (GTUBE, header and body checks)
	// RuleScores overrides the score of built-in rules by symbol (0 turns one off).
	RuleScores     map[string]float64 `toml:"rule_scores"`
	Bayes          bool               `toml:"bayes"` // each user's own statistical filter
	BayesThreshold float64            `toml:"bayes_threshold"`
	BayesMinSpam   int                `toml:"bayes_min_spam"`
	BayesMinHam    int                `toml:"bayes_min_ham"`

	JunkScore   float64 `toml:"junk_score"`   // at or above: file into Junk
	RejectScore float64 `toml:"reject_score"` // at or above: 554 at DATA
	SpamHeaders bool    `toml:"spam_headers"` // add X-Spam-Status and X-Spam-Score
	// CheckTimeout bounds one check at one stage.
	CheckTimeout string `toml:"check_timeout"`
	// SubmissionChecks are the checks run for the submission listeners (authenticated mail): any of ratelimit,
	// clamav, attachments, spamd, rspamd, milter, rules.
	SubmissionChecks []string `toml:"submission_checks"`
}

// RateLimit caps sending rates (0: no limit).
type RateLimit struct {
	PerIPHour     int            `toml:"per_ip_hour"`     // transactions per client IP (/64 for IPv6) per hour
	PerSenderHour int            `toml:"per_sender_hour"` // per envelope sender
	PerUserHour   int            `toml:"per_user_hour"`   // per authenticated user
	DomainDay     int            `toml:"domain_day"`      // recipients per day of a domain's authenticated users
	DomainDayCaps map[string]int `toml:"domain_day_caps"` // per-domain overrides of domain_day
}

// defaultDangerousExtensions and defaultDangerousContentTypes are the executable and script types mail clients
// run with one click (filter/attachments' defaults, as blocked by Gmail and Microsoft 365).
var defaultDangerousExtensions = []string{".ade", ".adp", ".app", ".appx", ".appxbundle", ".bas", ".bat", ".chm",
	".cmd", ".com", ".cpl", ".dll", ".exe", ".hta", ".inf", ".ins", ".img", ".iso", ".isp", ".jar", ".js", ".jse",
	".lnk", ".mde", ".msc", ".msi", ".msix", ".msp", ".mst", ".pif", ".ps1", ".psm1", ".reg", ".scf", ".scr", ".sct",
	".shb", ".sys", ".url", ".vb", ".vbe", ".vbs", ".vhd", ".vhdx", ".vxd", ".wsc", ".wsf", ".wsh", ".xll"}

var defaultDangerousContentTypes = []string{"application/x-msdownload", "application/x-msdos-program",
	"application/x-ms-dos-executable", "application/x-dosexec", "application/vnd.microsoft.portable-executable",
	"application/x-ms-installer", "application/x-msi", "application/hta", "application/x-ms-shortcut",
	"application/java-archive", "application/x-java-archive", "application/x-javascript", "application/x-vbscript",
	"text/vbscript"}

func defaultAntivirus() Antivirus {
	return Antivirus{OnError: "tempfail", ClamdTimeout: "60s", ClamdMaxSize: "25MiB",
		DangerousExtensions:   append([]string(nil), defaultDangerousExtensions...),
		DangerousContentTypes: append([]string(nil), defaultDangerousContentTypes...), ScanArchives: true}
}

func defaultAntispam() Antispam {
	return Antispam{DNSBL: []string{}, Milter: []string{}, DNSBLRejectWeight: 1, DNSBLScore: 3,
		OnError: "accept", SpamdTimeout: "60s", SpamdMaxSize: "1MiB", RspamdTimeout: "60s", RspamdMaxSize: "20MiB",
		MilterTimeout: "60s", GreylistDelay: "5m", GreylistRetryWindow: "2d", GreylistMaxAge: "35d",
		GreylistWhitelistAfter: 5, SPF: true, SPFFailScore: 3.5, SPFSoftFailScore: 1, SPFPermErrorScore: 0.5,
		SPFTempError: "accept", DKIMVerify: true, DKIMMaxSignatures: 10, ARC: true, ARCTrustedSealers: []string{},
		DMARC: true, DMARCPolicy: "apply",
		Rules: true, RuleScores: map[string]float64{}, Bayes: true, BayesThreshold: 0.9, BayesMinSpam: 20, BayesMinHam: 20,
		JunkScore: 5.0, RejectScore: 15.0, SpamHeaders: true, CheckTimeout: "30s",
		SubmissionChecks: []string{"ratelimit", "clamav", "attachments"}}
}

// submissionCheckNames are the checks submission_checks may name.
var submissionCheckNames = map[string]bool{"ratelimit": true, "clamav": true, "attachments": true, "spamd": true,
	"rspamd": true, "milter": true, "rules": true}

// validateFilters checks [antivirus], [antispam] and [ratelimit].
func (c *Config) validateFilters() []error {
	var errs []error
	av, as := c.Antivirus, c.Antispam
	for _, p := range []struct{ key, val string }{{"antivirus.on_error", av.OnError}, {"antispam.on_error", as.OnError},
		{"antispam.spf_temperror", as.SPFTempError}} {
		if p.val != "tempfail" && p.val != "accept" {
			errs = append(errs, fmt.Errorf("%s: %q is not tempfail or accept", p.key, p.val))
		}
	}
	for _, d := range []struct{ key, val string }{
		{"antivirus.clamd_timeout", av.ClamdTimeout}, {"antispam.spamd_timeout", as.SpamdTimeout},
		{"antispam.rspamd_timeout", as.RspamdTimeout}, {"antispam.milter_timeout", as.MilterTimeout},
		{"antispam.greylist_delay", as.GreylistDelay}, {"antispam.greylist_retry_window", as.GreylistRetryWindow},
		{"antispam.greylist_max_age", as.GreylistMaxAge}, {"antispam.check_timeout", as.CheckTimeout},
	} {
		if v, err := ParseDuration(d.val); err != nil || v <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive duration", d.key, d.val))
		}
	}
	for _, s := range []struct{ key, val string }{{"antispam.spamd_max_size", as.SpamdMaxSize},
		{"antispam.rspamd_max_size", as.RspamdMaxSize}, {"antivirus.clamd_max_size", av.ClamdMaxSize}} {
		if _, err := ParseSize(s.val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.key, err))
		}
	}
	for _, z := range as.DNSBL {
		if err := checkZone(z); err != nil {
			errs = append(errs, fmt.Errorf("antispam.dnsbl: %w", err))
		}
	}
	if as.DNSBLRejectWeight <= 0 {
		errs = append(errs, fmt.Errorf("antispam.dnsbl_reject_weight: %v must be above 0", as.DNSBLRejectWeight))
	}
	if as.JunkScore < 0 || as.RejectScore < 0 {
		errs = append(errs, errors.New("antispam: junk_score and reject_score must be 0 (off) or more"))
	}
	if as.BayesThreshold <= 0 || as.BayesThreshold >= 1 {
		errs = append(errs, fmt.Errorf("antispam.bayes_threshold: %v is not between 0 and 1", as.BayesThreshold))
	}
	for _, d := range as.ARCTrustedSealers {
		if d = strings.TrimSpace(d); d == "" || strings.ContainsAny(d, " @/;") {
			errs = append(errs, fmt.Errorf("antispam.arc_trusted_sealers: %q is not a domain", d))
		}
	}
	switch as.DMARCPolicy {
	case "apply", "junk", "none":
	default:
		errs = append(errs, fmt.Errorf("antispam.dmarc_policy: %q is not apply, junk or none", as.DMARCPolicy))
	}
	for _, n := range as.SubmissionChecks {
		if !submissionCheckNames[n] {
			errs = append(errs, fmt.Errorf("antispam.submission_checks: %q is not one of ratelimit, clamav, attachments, spamd, rspamd, milter, rules", n))
		}
	}
	for _, ct := range av.DangerousContentTypes {
		if strings.Count(ct, "/") != 1 || strings.ContainsAny(ct, " ;") {
			errs = append(errs, fmt.Errorf("antivirus.dangerous_content_types: %q is not like \"application/x-msdownload\"", ct))
		}
	}
	for _, e := range av.DangerousExtensions {
		if !strings.HasPrefix(e, ".") || len(e) < 2 || strings.ContainsAny(e, " /\\") {
			errs = append(errs, fmt.Errorf("antivirus.dangerous_extensions: %q is not like \".exe\"", e))
		}
	}
	rl := c.RateLimit
	for k, v := range map[string]int{"per_ip_hour": rl.PerIPHour, "per_sender_hour": rl.PerSenderHour,
		"per_user_hour": rl.PerUserHour, "domain_day": rl.DomainDay} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("ratelimit.%s: %d must be 0 (off) or more", k, v))
		}
	}
	for d, v := range rl.DomainDayCaps {
		if v < 0 || d == "" || strings.ContainsAny(d, " @") {
			errs = append(errs, fmt.Errorf("ratelimit.domain_day_caps: %q = %d is not a domain and a count >= 0", d, v))
		}
	}
	return errs
}

// checkZone is the syntax of one antispam.dnsbl entry: "zone" or "zone=weight" (filter/dnsbl.ParseZone).
func checkZone(s string) error {
	name, w, hasW := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if name == "" || strings.ContainsAny(name, " /@") {
		return fmt.Errorf("%q is not a zone name", s)
	}
	if hasW {
		if f, err := strconv.ParseFloat(strings.TrimSpace(w), 64); err != nil || f < 0 {
			return fmt.Errorf("%q: weight is not a number >= 0", s)
		}
	}
	return nil
}
