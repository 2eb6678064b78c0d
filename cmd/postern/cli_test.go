package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// postern runs one command line in-process and returns stdout, stderr and the exit status.
func postern(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// ok runs a command that must succeed.
func ok(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := postern(t, stdin, args...)
	if code != 0 {
		t.Fatalf("postern %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fails runs a command that must fail with one line on stderr containing want.
func fails(t *testing.T, want, stdin string, args ...string) {
	t.Helper()
	_, errOut, code := postern(t, stdin, args...)
	if code != 1 || !strings.HasPrefix(errOut, "postern: ") || strings.Count(errOut, "\n") != 1 ||
		!strings.Contains(errOut, want) {
		t.Fatalf("postern %s: exit %d, stderr %q; want exit 1 and one line with %q", strings.Join(args, " "), code,
			errOut, want)
	}
}

func TestCLIWorkflow(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "postern.toml")
	out := ok(t, "", "init", "--dir", dir, "--hostname", "mail.example.test", "--domain", "example.test", "--unprivileged")
	if !strings.Contains(out, "Next steps") {
		t.Errorf("init printed no next steps:\n%s", out)
	}
	fails(t, "not overwriting", "", "init", "--dir", dir)
	c := []string{"-c", cfg}
	if out := ok(t, "", append(c, "check")...); strings.TrimSpace(out) != "ok" {
		t.Errorf("check printed %q", out)
	}
	if out := ok(t, "", append(c, "domain", "list")...); strings.TrimSpace(out) != "example.test" {
		t.Errorf("domain list: %q", out)
	}
	ok(t, "pw-alice\n", append(c, "user", "add", "alice@example.test", "--password-stdin", "--quota", "2KiB")...)
	fails(t, "domain example.org is not local: run postern domain add example.org", "pw\n",
		append(c, "user", "add", "bob@example.org", "--password-stdin")...)
	fails(t, "use --password-stdin", "", append(c, "user", "add", "carol@example.test")...)
	fails(t, "--quota", "pw\n", append(c, "user", "add", "dave@example.test", "--password-stdin", "--quota", "lots")...)
	fails(t, "password must not be empty", "\n", append(c, "user", "add", "erin@example.test", "--password-stdin")...)
	if out := ok(t, "", append(c, "user", "list")...); !strings.Contains(out, "alice@example.test") || !strings.Contains(out, "2048") {
		t.Errorf("user list: %q", out)
	}
	ok(t, "pw-new\n", append(c, "user", "passwd", "alice@example.test", "--password-stdin")...)

	mb := ok(t, "", append(c, "mailbox", "list", "alice@example.test")...)
	lines := strings.Split(strings.TrimSpace(mb), "\n")
	if len(lines) != 5 || lines[0] != "INBOX\t0\t0\t0" {
		t.Errorf("mailbox list:\n%s", mb)
	}
	var rows []struct {
		Name     string `json:"name"`
		Messages int    `json:"messages"`
	}
	if err := json.Unmarshal([]byte(ok(t, "", append(c, "mailbox", "list", "--json", "alice@example.test")...)), &rows); err != nil ||
		len(rows) != 5 || rows[0].Name != "INBOX" {
		t.Errorf("mailbox list --json: %v %+v", err, rows)
	}
	fails(t, "not found", "", append(c, "mailbox", "list", "nobody@example.test")...)

	ok(t, "", append(c, "alias", "add", "team@example.test", "alice@example.test", "ext@remote.example")...)
	if out := ok(t, "", append(c, "alias", "list")...); !strings.Contains(out, "team@example.test\talice@example.test, ext@remote.example") {
		t.Errorf("alias list: %q", out)
	}
	ok(t, "", append(c, "alias", "rm", "team@example.test")...)
	fails(t, "not found", "", append(c, "alias", "rm", "team@example.test")...)

	ok(t, "", append(c, "access", "add", "10.0.0.0/8", "relay")...)
	if out := ok(t, "", append(c, "access", "list")...); strings.TrimSpace(out) != "10.0.0.0/8\tRELAY" {
		t.Errorf("access list: %q", out)
	}
	fails(t, "MAYBE", "", append(c, "access", "add", "10.0.0.1", "MAYBE")...)
	ok(t, "", append(c, "access", "rm", "10.0.0.0/8")...)

	if out := ok(t, "", append(c, "queue", "list")...); out != "" {
		t.Errorf("queue list of an empty queue: %q", out)
	}
	ok(t, "", append(c, "queue", "flush")...)
	fails(t, "not found", "", append(c, "queue", "show", "NOPE")...)

	ok(t, "", append(c, "user", "rm", "alice@example.test")...)
	ok(t, "", append(c, "domain", "rm", "example.test")...)
	if out := ok(t, "", "version"); !strings.HasPrefix(out, "postern ") {
		t.Errorf("version: %q", out)
	}
}

func TestCLICertificates(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "postern.toml")
	ok(t, "", "init", "--dir", dir, "--hostname", "mail.example.test")
	caPEM := ok(t, "", "-c", cfg, "ca", "cert")
	if ok(t, "", "-c", cfg, "ca", "init") == "" {
		t.Error("ca init printed nothing")
	}
	if again := ok(t, "", "-c", cfg, "ca", "cert"); again != caPEM {
		t.Fatal("ca init replaced the CA made by init")
	}
	prefix := filepath.Join(t.TempDir(), "one")
	ok(t, "", "-c", cfg, "ca", "issue", "--out", prefix, "mail.example.test", "127.0.0.1")
	pair, err := tls.LoadX509KeyPair(prefix+".crt", prefix+".key")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(prefix + ".key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v", fi, err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(caPEM))
	for _, name := range []string{"mail.example.test", "127.0.0.1"} {
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("issued certificate for %s: %v", name, err)
		}
	}
	pemOut := ok(t, "", "-c", cfg, "ca", "issue", "other.example.test")
	if !strings.Contains(pemOut, "BEGIN CERTIFICATE") || !strings.Contains(pemOut, "BEGIN PRIVATE KEY") {
		t.Errorf("ca issue without --out printed:\n%s", pemOut)
	}
	fails(t, "not a host name", "", "-c", cfg, "ca", "issue", "bad host")
}

func TestCheckExplainsInOneLine(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("hostname = \"x\"\nno_such_key = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fails(t, "no_such_key", "", "-c", bad, "check")
	multi := filepath.Join(dir, "multi.toml")
	if err := os.WriteFile(multi, []byte("hostname = \"\"\n[log]\nlevel = \"loud\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fails(t, "log.level", "", "-c", multi, "check")
	fails(t, "no such file", "", "-c", filepath.Join(dir, "missing.toml"), "domain", "list")
}
