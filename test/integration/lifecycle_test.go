//go:build integration

package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/store/sqlite"
)

// storedSubjects opens the server's store directly (the server must be stopped) and returns the Subject of each
// message in the user's INBOX, read from the blob.
func storedSubjects(t *testing.T, s *server, address string) map[string]bool {
	t.Helper()
	ctx := context.Background()
	data := filepath.Join(s.dir, "data")
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(data, "postern.db"), BlobDir: filepath.Join(data, "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := st.GetUser(ctx, address)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := st.GetMailbox(ctx, u.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := st.ListMessages(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[string]bool{}
	for _, m := range msgs {
		r, err := st.Blobs().Open(ctx, m.BlobID)
		if err != nil {
			t.Fatalf("message uid %d: blob %s: %v", m.UID, m.BlobID, err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != m.Size {
			t.Errorf("uid %d: blob has %d bytes, row says %d", m.UID, len(b), m.Size)
		}
		sub := regexp.MustCompile(`(?m)^Subject: (.*)\r$`).FindSubmatch(b)
		if sub == nil {
			t.Errorf("uid %d: no Subject in stored message:\n%s", m.UID, b)
			continue
		}
		subjects[string(sub[1])] = true
	}
	return subjects
}

// TestKillDuringBurst kills the server with SIGKILL while many clients deliver, restarts it and proves that every
// message that got a 250 is stored whole, and nothing partial is.
func TestKillDuringBurst(t *testing.T) {
	s := newServer(t, serverOptions{smtpExtra: "max_connections_per_ip = 100"})
	s.addUser("bob@example.test", "bob-secret")
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				subject := fmt.Sprintf("burst-%d-%d", w, i)
				msg := "Subject: " + subject + "\r\n\r\n" + strings.Repeat("payload line\r\n", 50)
				if err := sendPlain(s.addr(s.ports.SMTP), "a@remote.example", "bob@example.test", msg); err != nil {
					return // the server died: this one was not acknowledged
				}
				mu.Lock()
				acked = append(acked, subject)
				mu.Unlock()
			}
		}(w)
	}
	time.Sleep(1500 * time.Millisecond)
	s.kill()
	close(stop)
	wg.Wait()
	if len(acked) < 10 {
		t.Fatalf("only %d messages acknowledged before the kill; the test proves nothing", len(acked))
	}
	stored := storedSubjects(t, s, "bob@example.test")
	for _, sub := range acked {
		if !stored[sub] {
			t.Errorf("acknowledged message %q lost after SIGKILL", sub)
		}
	}
	t.Logf("%d acknowledged, %d stored", len(acked), len(stored))
	// The restarted server serves the same store.
	s.start()
	if got := s.inboxCount("bob@example.test"); got != int64(len(stored)) {
		t.Fatalf("after restart INBOX has %d messages, store had %d", got, len(stored))
	}
}

// sendPlain sends one message with Go's net/smtp client without STARTTLS (the test CA is not trusted here).
func sendPlain(addr, from, to, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// TestSIGTERMFinishesSessions: a session in DATA when SIGTERM arrives may finish within the grace period and its
// message is stored; the server then exits 0.
func TestSIGTERMFinishesSessions(t *testing.T) {
	s := newServer(t, serverOptions{smtpExtra: `shutdown_grace = "10s"`})
	s.addUser("bob@example.test", "bob-secret")
	tc := mxSession(t, s)
	tc.send("MAIL FROM:<a@remote.example>")
	tc.expect(250)
	tc.send("RCPT TO:<bob@example.test>")
	tc.expect(250)
	tc.send("DATA")
	tc.expect(354)
	tc.write("Subject: in flight\r\n\r\nfirst half\r\n")
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	tc.write("second half\r\n.\r\n")
	tc.expect(250)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		t.Fatal("server did not exit after SIGTERM")
	}
	if s.exitErr != nil {
		t.Fatalf("exit: %v\n%s", s.exitErr, s.stderr)
	}
	if !storedSubjects(t, s, "bob@example.test")["in flight"] {
		t.Fatal("message finished during shutdown was not stored")
	}
}

// TestSIGHUPReloadsCertificate: replacing cert_file/key_file and sending SIGHUP changes the served certificate
// without a restart.
func TestSIGHUPReloadsCertificate(t *testing.T) {
	needTool(t, "openssl")
	dir := t.TempDir()
	// Two certificates from the built-in CA of a scratch instance.
	cfgDir := t.TempDir()
	tmp := &server{t: t, dir: cfgDir, config: filepath.Join(cfgDir, "postern.toml")}
	tmp.run("init", "--dir", cfgDir, "--hostname", "mail.example.test")
	for _, n := range []string{"one", "two"} {
		tmp.run("ca", "issue", "--out", filepath.Join(dir, n), "mail.example.test")
	}
	certFile, keyFile := filepath.Join(dir, "live.crt"), filepath.Join(dir, "live.key")
	copyFile(t, filepath.Join(dir, "one.crt"), certFile)
	copyFile(t, filepath.Join(dir, "one.key"), keyFile)
	s := newServer(t, serverOptions{extra: fmt.Sprintf("[tls]\ncert_file = %q\nkey_file = %q\n", certFile, keyFile)})
	serial := func() string {
		t.Helper()
		tc := dialTLS(t, s.addr(s.ports.Submissions))
		cs := tc.c.(interface{ ConnectionState() tlsState }).ConnectionState()
		return cs.PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	copyFile(t, filepath.Join(dir, "two.crt"), certFile)
	copyFile(t, filepath.Join(dir, "two.key"), keyFile)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for serial() == first {
		if time.Now().After(deadline) {
			t.Fatalf("certificate not reloaded on SIGHUP:\n%s", s.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(to+".tmp", to); err != nil {
		t.Fatal(err)
	}
}

// TestCheck: `postern check` accepts a good config and explains a bad one in one line.
func TestCheck(t *testing.T) {
	s := newServer(t, serverOptions{})
	if out := s.run("check"); !strings.Contains(strings.ToLower(out), "ok") {
		t.Fatalf("check on a good config: %q", out)
	}
	bad := filepath.Join(s.dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("hostname = \"x\"\nno_such_key = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := (&server{t: t, config: bad}).runErr("", "check")
	if err == nil {
		t.Fatalf("check accepted an unknown key:\n%s", out)
	}
	if !strings.Contains(out, "no_such_key") {
		t.Fatalf("check did not name the bad key: %q", out)
	}
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != 1 {
		t.Errorf("check explained the problem in %d lines, want 1: %q", n, out)
	}
}

// TestMailboxList: tab-separated, INBOX first, and --json.
func TestMailboxList(t *testing.T) {
	s := newServer(t, serverOptions{})
	s.addUser("bob@example.test", "bob-secret")
	out := s.run("mailbox", "list", "bob@example.test")
	sc := bufio.NewScanner(strings.NewReader(out))
	var names []string
	for sc.Scan() {
		names = append(names, strings.Split(sc.Text(), "\t")[0])
	}
	if len(names) != 5 || names[0] != "INBOX" {
		t.Fatalf("mailbox list:\n%s", out)
	}
	js := s.run("mailbox", "list", "--json", "bob@example.test")
	if !strings.HasPrefix(strings.TrimSpace(js), "[") || !strings.Contains(js, "INBOX") {
		t.Fatalf("mailbox list --json:\n%s", js)
	}
}

// TestOrphanBlobsCollected: a blob left by a crash between writing and committing is removed at start, while blobs
// that messages reference stay.
func TestOrphanBlobsCollected(t *testing.T) {
	s := newServer(t, serverOptions{})
	s.addUser("bob@example.test", "bob-secret")
	if err := sendPlain(s.addr(s.ports.SMTP), "a@remote.example", "bob@example.test", "Subject: keep me\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	s.stop()
	orphanDir := filepath.Join(s.dir, "data", "blobs", "ab")
	os.MkdirAll(orphanDir, 0o750)
	orphan := filepath.Join(orphanDir, "ab"+strings.Repeat("0", 30))
	if err := os.WriteFile(orphan, []byte("half a crash"), 0o640); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(orphan, old, old)
	// Age the real blob too: being old must not get it collected.
	filepath.Walk(filepath.Join(s.dir, "data", "blobs"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			os.Chtimes(p, old, old)
		}
		return nil
	})
	s.start()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(orphan); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan blob not collected:\n%s", s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	if !storedSubjects(t, s, "bob@example.test")["keep me"] {
		t.Fatal("a referenced blob was collected")
	}
}
