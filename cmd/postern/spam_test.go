package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSpamTrainCLI(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "postern.toml")
	ok(t, "", "init", "--dir", dir, "--hostname", "mail.example.test", "--domain", "example.test", "--unprivileged")
	c := []string{"-c", cfg}
	ok(t, "pw\n", append(c, "user", "add", "alice@example.test", "--password-stdin")...)
	mbox := filepath.Join(dir, "spam.mbox")
	if err := os.WriteFile(mbox, []byte("From x Mon Jan  1 00:00:00 2024\nSubject: pills\n\ncheap pills\n"+
		"From y Mon Jan  1 00:00:00 2024\nSubject: money\n\nwin money now\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := ok(t, "", append(c, "spam", "train", "--spam", "alice@example.test", mbox)...)
	if !strings.Contains(out, "2 messages read, 2 learned; alice@example.test now has 2 spam and 0 ham") {
		t.Errorf("train --spam: %q", out)
	}
	out = ok(t, "Subject: lunch\r\n\r\nat noon?\r\n", append(c, "spam", "train", "--ham", "alice@example.test", "-")...)
	if !strings.Contains(out, "1 messages read, 1 learned; alice@example.test now has 2 spam and 1 ham") {
		t.Errorf("train --ham: %q", out)
	}
	if out := ok(t, "", append(c, "spam", "status", "alice@example.test")...); out != "spam\t2\nham\t1\nready\tfalse\n" {
		t.Errorf("status: %q", out)
	}
	fails(t, "exactly one of --spam and --ham", "", append(c, "spam", "train", "alice@example.test", mbox)...)
	fails(t, "no user bob@example.test", "", append(c, "spam", "train", "--ham", "bob@example.test", mbox)...)
	fails(t, "no such file", "", append(c, "spam", "train", "--ham", "alice@example.test", filepath.Join(dir, "nope"))...)
}
