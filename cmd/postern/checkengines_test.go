package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/filter/engine/enginetest"
)

// TestCheckEngines: `postern check` pings the configured filter engines and reports one that does not answer
// without failing.
func TestCheckEngines(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "postern.toml")
	ok(t, "", "init", "--dir", dir, "--hostname", "mail.example.test", "--domain", "example.test", "--unprivileged")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dead := enginetest.DeadAddr(t)
	s := strings.Replace(string(b), `spamd = ""`, `spamd = "`+dead+`"`, 1)
	if s == string(b) {
		t.Fatal("no spamd key in the written config")
	}
	if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	out := ok(t, "", "-c", cfg, "check")
	if !strings.HasPrefix(out, "ok\n") || !strings.Contains(out, "filter engine spamd: does not answer") {
		t.Fatalf("check with spamd down:\n%s", out)
	}
}
