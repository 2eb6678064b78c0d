//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIMAPMbsyncTwoWay: mbsync (isync) syncs a mailbox tree both ways with a local Maildir — new messages, flags,
// deletions and new folders on either side — and a further sync then changes nothing on either side.
func TestIMAPMbsyncTwoWay(t *testing.T) {
	needTool(t, "mbsync")
	s := newIMAPServer(t, serverOptions{})
	const user, pass = "sync@example.test", "sync-secret-1"
	s.addUser(user, pass)
	for i := 1; i <= 3; i++ {
		smtpDeliver(t, s, "sender@remote.example", user, testMessage(fmt.Sprintf("inbox %d", i), "hello"))
	}
	ic := dialIMAPS(t, s.addr(s.ports.IMAPS))
	ic.greeting()
	ic.login(user, pass)
	for _, mb := range []string{"Projects", "Projects/2024", "Projects/2024/Q1"} {
		ic.cmd("CREATE " + imapQuote(mb)).ok()
	}
	appendMsg(ic, "Projects", `(\Seen)`, testMessage("project a", "a"))
	appendMsg(ic, "Projects", `(\Flagged)`, testMessage("project b", "b"))
	appendMsg(ic, "Projects/2024", "()", testMessage("year", "y"))
	appendMsg(ic, "Projects/2024/Q1", `(\Seen \Answered)`, testMessage("quarter", "q"))

	dir := t.TempDir()
	cfg := writeMbsyncConfig(t, s, dir, user, pass)
	local := filepath.Join(dir, "mail")
	runMbsync(t, cfg)
	l := localMaildir(t, local)
	for box, n := range map[string]int{"INBOX": 3, "Projects": 2, "Projects/2024": 1, "Projects/2024/Q1": 1,
		"Sent": 0, "Drafts": 0, "Trash": 0, "Junk": 0} {
		if len(l[box]) != n {
			t.Errorf("after the first sync local %s has %d messages, want %d (local: %v)", box, len(l[box]), n, l)
		}
	}
	if f := flagsOf(l["Projects/2024/Q1"]); f != "RS" {
		t.Errorf("Projects/2024/Q1 message has Maildir flags %q, want RS", f)
	}

	// Changes on the server: expunge, a flag, a delivery, a new folder.
	ic.cmd("SELECT INBOX").ok()
	ic.cmd(`STORE 1 +FLAGS.SILENT (\Deleted)`).ok()
	ic.cmd("EXPUNGE").ok()
	ic.cmd(`STORE 1 +FLAGS.SILENT (\Answered)`).ok()
	ic.cmd("CLOSE").ok()
	smtpDeliver(t, s, "sender@remote.example", user, testMessage("inbox 4", "late"))
	ic.cmd("CREATE Archive").ok()
	appendMsg(ic, "Archive", `(\Seen)`, testMessage("archived", "old"))
	// Changes on the local side: delete, flag, new message, new folder.
	must(t, os.Remove(filepath.Join(local, "Projects", l["Projects"][0])))
	flagLocal(t, filepath.Join(local, "INBOX"), l["INBOX"][len(l["INBOX"])-1], "F")
	writeLocal(t, filepath.Join(local, "Projects", "2024"), "local new", "written locally")
	// A new local folder with a subfolder (both Maildirs, so neither side has to infer the parent).
	writeLocal(t, filepath.Join(local, "Local"), "local parent", "a local folder")
	writeLocal(t, filepath.Join(local, "Local", "Notes"), "note", "a local subfolder")

	runMbsync(t, cfg)
	srv := serverState(t, ic)
	want := map[string]int{"INBOX": 3, "Projects": 1, "Projects/2024": 2, "Projects/2024/Q1": 1, "Archive": 1,
		"Local": 1, "Local/Notes": 1}
	for box, n := range want {
		if len(srv[box]) != n {
			t.Errorf("after the second sync the server's %s has %d messages, want %d (server: %v)", box, len(srv[box]), n, srv)
		}
	}
	if !strings.Contains(strings.Join(srv["INBOX"], " "), `\Flagged`) {
		t.Errorf("local F flag did not reach the server's INBOX: %v", srv["INBOX"])
	}
	l = localMaildir(t, local)
	for box, n := range want {
		if len(l[box]) != n {
			t.Errorf("after the second sync local %s has %d messages, want %d (local: %v)", box, len(l[box]), n, l)
		}
	}
	if !strings.Contains(strings.Join(l["INBOX"], " "), "R") {
		t.Errorf("server \\Answered did not reach the local INBOX: %v", l["INBOX"])
	}

	// A further sync changes nothing, on either side.
	out := runMbsync(t, cfg)
	if srv2 := serverState(t, ic); fmt.Sprint(srv2) != fmt.Sprint(srv) {
		t.Errorf("no-op sync changed the server:\nbefore %v\nafter  %v\nmbsync: %s", srv, srv2, out)
	}
	if l2 := localMaildir(t, local); fmt.Sprint(l2) != fmt.Sprint(l) {
		t.Errorf("no-op sync changed the Maildir:\nbefore %v\nafter  %v\nmbsync: %s", l, l2, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func appendMsg(ic *imapConn, mailbox, flags, msg string) {
	ic.t.Helper()
	ic.tag++
	tag := fmt.Sprintf("t%d", ic.tag)
	ic.write(fmt.Sprintf("%s APPEND %s %s {%d}\r\n", tag, imapQuote(mailbox), flags, len(msg)))
	if l := ic.line(); !strings.HasPrefix(l, "+") {
		ic.t.Fatalf("APPEND %s: got %q, want a continuation request", mailbox, l)
	}
	ic.write(msg + "\r\n")
	ic.readUntilTagged(tag, "APPEND "+mailbox).ok()
}

// writeMbsyncConfig trusts exactly the server's certificate (isync trusts a certificate listed in
// CertificateFile whatever its name), so the sync runs over IMAPS.
func writeMbsyncConfig(t *testing.T, s *server, dir, user, pass string) string {
	t.Helper()
	c, err := tls.Dial("tcp", s.addr(s.ports.IMAPS), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.ConnectionState().PeerCertificates[0]
	c.Close()
	certFile := filepath.Join(dir, "server.pem")
	must(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), 0o600))
	must(t, os.MkdirAll(filepath.Join(dir, "mail"), 0o700))
	cfg := fmt.Sprintf(`IMAPAccount postern
Host 127.0.0.1
Port %d
User %s
Pass %s
SSLType IMAPS
CertificateFile %s
Timeout 30

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
CopyArrivalDate yes
`, s.ports.IMAPS, user, pass, certFile, filepath.Join(dir, "mail"), filepath.Join(dir, "mail"))
	path := filepath.Join(dir, "mbsyncrc")
	must(t, os.WriteFile(path, []byte(cfg), 0o600))
	return path
}

func runMbsync(t *testing.T, cfg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mbsync", "-V", "-c", cfg, "-a").CombinedOutput()
	if err != nil {
		t.Fatalf("mbsync: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "Error") || strings.Contains(string(out), "Warning") {
		t.Errorf("mbsync reported a problem:\n%s", out)
	}
	return string(out)
}

// localMaildir lists each Maildir folder's message files (name without the host part, so renames show).
func localMaildir(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.IsDir() || (info.Name() != "cur" && info.Name() != "new") {
			return err
		}
		box, _ := filepath.Rel(root, filepath.Dir(p))
		if _, ok := out[box]; !ok {
			out[box] = []string{}
		}
		ents, err := os.ReadDir(p)
		for _, e := range ents {
			out[box] = append(out[box], filepath.Join(info.Name(), e.Name()))
		}
		sort.Strings(out[box])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func flagsOf(files []string) string {
	if len(files) != 1 {
		return fmt.Sprint(files)
	}
	if i := strings.LastIndex(files[0], ":2,"); i >= 0 {
		return files[0][i+3:]
	}
	return ""
}

// flagLocal adds a Maildir flag to a message file (moving it to cur/, as a mail reader does).
func flagLocal(t *testing.T, box, file, flag string) {
	t.Helper()
	name := filepath.Base(file)
	if !strings.Contains(name, ":2,") {
		name += ":2,"
	}
	must(t, os.Rename(filepath.Join(box, file), filepath.Join(box, "cur", name+flag)))
}

func writeLocal(t *testing.T, box, subject, body string) {
	t.Helper()
	for _, d := range []string{"cur", "new", "tmp"} {
		must(t, os.MkdirAll(filepath.Join(box, d), 0o700))
	}
	name := fmt.Sprintf("%d.%d.localhost", time.Now().UnixNano(), os.Getpid())
	must(t, os.WriteFile(filepath.Join(box, "new", name), []byte(testMessage(subject, body)), 0o600))
}

var existsLine = regexp.MustCompile(`^\* (\d+) EXISTS`)

// serverState lists every mailbox's messages as "UID flags", through IMAP.
func serverState(t *testing.T, ic *imapConn) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	var boxes []string
	for _, l := range ic.cmd(`LIST "" "*"`).ok().untagged {
		if strings.Contains(l, `\Noselect`) || strings.Contains(l, `\NonExistent`) {
			continue
		}
		if i := strings.LastIndex(l, ` "/" `); i >= 0 {
			boxes = append(boxes, strings.Trim(l[i+5:], `"`))
		}
	}
	for _, b := range boxes {
		r := ic.cmd("EXAMINE " + imapQuote(b)).ok()
		n := 0
		for _, l := range r.untagged {
			if m := existsLine.FindStringSubmatch(l); m != nil {
				n, _ = strconv.Atoi(m[1])
			}
		}
		out[b] = []string{}
		if n > 0 {
			for _, l := range ic.cmd("FETCH 1:* (UID FLAGS)").ok().untagged {
				out[b] = append(out[b], l[strings.Index(l, "("):])
			}
		}
		sort.Strings(out[b])
	}
	ic.cmd("UNSELECT").ok()
	return out
}
