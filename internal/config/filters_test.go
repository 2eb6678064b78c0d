package config

import (
	"strings"
	"testing"
)

func TestFilterKeys(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		set  func(*Config)
		want string
	}{
		{func(c *Config) { c.Antispam.DNSBL = []string{"bl.example=x"} }, "antispam.dnsbl"},
		{func(c *Config) { c.Antispam.OnError = "drop" }, "antispam.on_error"},
		{func(c *Config) { c.Antispam.GreylistDelay = "soon" }, "antispam.greylist_delay"},
		{func(c *Config) { c.Antispam.SubmissionChecks = []string{"greylist"} }, "antispam.submission_checks"},
		{func(c *Config) { c.Antispam.DMARCPolicy = "reject" }, "antispam.dmarc_policy"},
		{func(c *Config) { c.Antivirus.DangerousExtensions = []string{"exe"} }, "antivirus.dangerous_extensions"},
		{func(c *Config) { c.Antivirus.ClamdMaxSize = "big" }, "antivirus.clamd_max_size"},
		{func(c *Config) { c.Antispam.ARCTrustedSealers = []string{"lists@example.org"} }, "antispam.arc_trusted_sealers"},
		{func(c *Config) { c.RateLimit.PerIPHour = -1 }, "ratelimit.per_ip_hour"},
		{func(c *Config) { c.RateLimit.DomainDayCaps = map[string]int{"a b": 1} }, "ratelimit.domain_day_caps"},
	} {
		c := Default()
		tc.set(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.want, err)
		}
	}
}
