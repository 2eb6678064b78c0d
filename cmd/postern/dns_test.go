package main

import (
	"strings"
	"testing"
)

func TestDNSRecords(t *testing.T) {
	dir := t.TempDir()
	c := []string{"-c", dir + "/postern.toml"}
	ok(t, "", "init", "--dir", dir, "--hostname", "mail.example.test", "--domain", "example.test")
	out := ok(t, "", append(c, "dns", "records", "Example.TEST")...)
	for _, want := range []string{
		"example.test. ", "IN MX    10 mail.example.test.", `"v=spf1 mx -all"`, "_dmarc.example.test.",
		"postern-rsa._domainkey.example.test.", `"v=DKIM1; k=ed25519; p=`, "_mta-sts.example.test.", `"v=STSv1; id=`,
		"autoconfig.example.test.", "_submissions._tcp.example.test.", "mode: testing",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dns records lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "k=rsa") && !strings.Contains(line, `" "`) {
			t.Errorf("the RSA record is not split into 255-byte strings: %s", line)
		}
	}
	// Keys are made once: a second run prints the same records.
	if again := ok(t, "", append(c, "dns", "records", "example.test")...); again != out {
		t.Error("dns records changed between runs")
	}
	fails(t, "not local", "", append(c, "dns", "records", "other.test")...)
}
