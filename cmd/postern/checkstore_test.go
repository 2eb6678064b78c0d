package main

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/admin"
)

func TestCheckStore(t *testing.T) {
	dir := t.TempDir()
	c := []string{"-c", filepath.Join(dir, "postern.toml")}
	ok(t, "", "init", "--dir", dir, "--hostname", "mail.example.test", "--domain", "example.test", "--unprivileged")
	ok(t, "pw\n", append(c, "user", "add", "alice@example.test", "--password-stdin")...)
	out := ok(t, "", append(c, "check", "--store")...)
	if !strings.HasPrefix(out, "ok\n") || !strings.Contains(out, "store: clean") || !strings.Contains(out, "1 users") {
		t.Fatalf("check --store on a new store:\n%s", out)
	}
	fails(t, "need --store", "", append(c, "check", "--repair")...)

	// An orphan blob file, as a crash between writing a blob and committing its rows leaves one: reported, not a
	// problem; --repair removes it once it is old.
	blobs := filepath.Join(dir, "data", "blobs")
	if _, err := os.Stat(blobs); err != nil {
		t.Fatalf("blob directory: %v", err)
	}
	id := "ab0123456789abcdef0123456789abcd"
	orphan := filepath.Join(blobs, id[:2], id)
	if err := os.MkdirAll(filepath.Dir(orphan), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orphan, []byte("Subject: lost\r\n\r\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(orphan, old, old); err != nil {
		t.Fatal(err)
	}
	out = ok(t, "", append(c, "check", "--store")...)
	if !strings.Contains(out, "1 orphan blob file(s), 17 bytes; 1 older than 1h0m0s") || !strings.Contains(out, "store: clean") {
		t.Fatalf("check --store with an orphan:\n%s", out)
	}
	out = ok(t, "", append(c, "check", "--store", "--json")...)
	var r admin.CheckReport
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Orphans) != 1 || r.Orphans[0].ID != id || !r.Orphans[0].Old {
		t.Fatalf("check --store --json: %v\n%s", err, out)
	}
	out = ok(t, "", append(c, "check", "--store", "--repair")...)
	if !strings.Contains(out, "1 removed") {
		t.Fatalf("check --store --repair:\n%s", out)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("orphan still there: %v", err)
	}

	// A drifted quota counter is a problem: exit status 1 and the problem named.
	db, err := sql.Open("sqlite", filepath.Join(dir, "data", "postern.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE users SET used_bytes = 42`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	stdout, _, code := postern(t, "", append(c, "check", "--store")...)
	if code != 1 || !strings.Contains(stdout, "PROBLEM quota: alice@example.test: used_bytes is 42, the messages add up to 0") {
		t.Fatalf("check --store with a drifted quota: exit %d\n%s", code, stdout)
	}
	fails(t, "store: 1 problem(s) found", "", append(c, "check", "--store")...)
}
