package imapserver

import (
	"context"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needTool skips when a tool is missing, except under CI=true where that is a failure.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// TestMbsync runs isync's mbsync (a real, strict client: UIDPLUS, pipelining, COMPRESS) for a two-way sync.
func TestMbsync(t *testing.T) {
	bin := needTool(t, "mbsync")
	e := newEnv(t, func(o *Options) { o.ImplicitTLS = true })
	for i := 1; i <= 3; i++ {
		e.deliver("INBOX", msgN(i))
	}
	dir := t.TempDir()
	cert := e.opts.TLSConfig.Certificates[0].Certificate[0]
	certFile := filepath.Join(dir, "server.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}), 0o600)
	os.MkdirAll(filepath.Join(dir, "mail"), 0o700)
	_, port, _ := strings.Cut(e.ln.Addr().String(), ":")
	cfg := fmt.Sprintf(`IMAPAccount postern
Host 127.0.0.1
Port %s
User alice@example.org
Pass secret
SSLType IMAPS
CertificateFile %s
SystemCertificates no
Timeout 10

IMAPStore remote
Account postern

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Remove Both
Expunge Both
SyncState *
`, port, certFile, filepath.Join(dir, "mail"), filepath.Join(dir, "mail"))
	os.WriteFile(filepath.Join(dir, "rc"), []byte(cfg), 0o600)
	run := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "-D", "-c", filepath.Join(dir, "rc"), "-a").CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync: %v\n%s", err, out)
		}
		return string(out)
	}
	run()
	files, _ := filepath.Glob(filepath.Join(dir, "mail", "INBOX", "cur", "*"))
	newFiles, _ := filepath.Glob(filepath.Join(dir, "mail", "INBOX", "new", "*"))
	if len(files)+len(newFiles) != 3 {
		t.Fatalf("%d+%d messages synced, want 3", len(files), len(newFiles))
	}
	run()
}
