//go:build integration

package integration

// The external filter engines, real daemons from Debian driven by Postern's checks directly: ClamAV's clamd with a
// locally made EICAR signature database (no freshclam: CI has no internet), SpamAssassin's spamd with GTUBE, and
// rspamd without Redis or network. The end-to-end SMTP test over the wired pipeline is H6's (filter_test.go).

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/clamav"
	"github.com/postern/postern/internal/filter/milter"
	"github.com/postern/postern/internal/filter/rspamd"
	"github.com/postern/postern/internal/filter/spamd"
	"github.com/postern/postern/internal/mail"
)

// engEICAR is the EICAR test file, split so this source file itself is not flagged by scanners.
const engEICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

const engGTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

func engMessage(body string) *filter.Message {
	raw := "Received: from client.example.org ([192.0.2.7]) by mx.example.net with ESMTP id Q1;\r\n" +
		"\tMon, 23 Nov 2026 20:00:00 +0000\r\n" +
		"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: Lunch on Thursday\r\n" +
		"Date: Mon, 23 Nov 2026 19:59:00 +0000\r\nMessage-ID: <lunch-1@example.org>\r\nMIME-Version: 1.0\r\n" + body
	return &filter.Message{Size: int64(len(raw)), Open: func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(raw)), nil
	}}
}

func engText(s string) string {
	return "Content-Type: text/plain; charset=utf-8\r\n\r\n" + s + "\r\n"
}

func engAttachment(name string, data []byte) string {
	return "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n" +
		"See the attachment.\r\n--b1\r\nContent-Type: application/octet-stream; name=\"" + name + "\"\r\n" +
		"Content-Disposition: attachment; filename=\"" + name + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(data) + "\r\n--b1--\r\n"
}

func engTxn() *filter.Txn {
	from, _ := mail.ParseAddress("alice@example.org")
	to, _ := mail.ParseAddress("bob@example.net")
	return &filter.Txn{Conn: &filter.Conn{IP: netip.MustParseAddr("192.0.2.7"), Helo: "client.example.org"},
		QueueID: "Q1", From: from, Recipients: []mail.Address{to}, Values: map[string]any{}}
}

// daemon is one engine process started by a test.
type daemon struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func startDaemon(t *testing.T, name string, args ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(name, args...), out: &syncBuffer{}, done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its workers too are stopped at the end
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { d.stop() })
	return d
}

func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	}
}

// waitReady polls ready until it succeeds, the daemon exits, or a generous start-up budget ends (clamd loads its
// database, rspamd compiles its rules).
func (d *daemon) waitReady(t *testing.T, what string, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := ready()
		if err == nil {
			return
		}
		select {
		case <-d.done:
			t.Fatalf("%s exited before it was ready: %v\n%s", what, err, d.out.String())
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v\n%s", what, err, d.out.String())
		}
	}
}

// startClamd runs clamd on a unix socket and a loopback TCP port with a database holding only the EICAR
// signatures made here: an MD5 signature of the file (sigtool --md5, for the attachment) and a hex body signature
// (.ndb, for EICAR anywhere in a stream). It returns the unix and TCP addresses.
func startClamd(t *testing.T) (*daemon, string, string) {
	clamd := needTool(t, "clamd")
	sigtool := needTool(t, "sigtool")
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o755); err != nil {
		t.Fatal(err)
	}
	eicarFile := filepath.Join(dir, "eicar.com")
	if err := os.WriteFile(eicarFile, []byte(engEICAR), 0o644); err != nil {
		t.Fatal(err)
	}
	md5sig, err := exec.Command(sigtool, "--md5", eicarFile).Output()
	if err != nil {
		t.Fatalf("sigtool --md5: %v", err)
	}
	if err := os.WriteFile(filepath.Join(db, "postern-test.hdb"), md5sig, 0o644); err != nil {
		t.Fatal(err)
	}
	ndb := "Postern.Test.EICAR:0:*:" + hex.EncodeToString([]byte(engEICAR)) + "\n"
	if err := os.WriteFile(filepath.Join(db, "postern-test.ndb"), []byte(ndb), 0o644); err != nil {
		t.Fatal(err)
	}
	sock, port := filepath.Join(dir, "clamd.sock"), freePort(t)
	conf := fmt.Sprintf("Foreground yes\nLocalSocket %s\nTCPSocket %d\nTCPAddr 127.0.0.1\nDatabaseDirectory %s\n"+
		"LogFile %s\nStreamMaxLength 1M\nMaxThreads 4\n", sock, port, db, filepath.Join(dir, "clamd.log"))
	if os.Geteuid() == 0 {
		conf += "User root\n" // Debian's build would otherwise drop to clamav, which cannot read the temp dir
	}
	cf := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, clamd, "-c", cf)
	unixAddr, tcpAddr := "unix:"+sock, fmt.Sprintf("tcp:127.0.0.1:%d", port)
	c, err := clamav.New(clamav.Options{Address: tcpAddr})
	if err != nil {
		t.Fatal(err)
	}
	d.waitReady(t, "clamd", func() error { return c.Ping(context.Background()) })
	return d, unixAddr, tcpAddr
}

func TestFilterEnginesClamd(t *testing.T) {
	d, unixAddr, tcpAddr := startClamd(t)
	ctx := context.Background()
	for _, addr := range []string{unixAddr, tcpAddr} {
		t.Run(addr[:strings.IndexByte(addr, ':')], func(t *testing.T) {
			c, err := clamav.New(clamav.Options{Address: addr})
			if err != nil {
				t.Fatal(err)
			}
			if v := c.Data(ctx, engTxn(), engMessage(engText("Shall we meet at noon?"))); v.Action != filter.Accept {
				t.Errorf("clean message: %+v", v)
			}
			for name, body := range map[string]string{
				"attachment": engAttachment("eicar.com", []byte(engEICAR)),
				"inline":     engText(engEICAR),
			} {
				v := c.Data(ctx, engTxn(), engMessage(body))
				if v.Action != filter.Reject || v.Code != 554 || v.Enhanced != "5.7.1" ||
					!strings.HasPrefix(v.Reason, "virus found: ") {
					t.Errorf("EICAR %s: %+v", name, v)
				}
				t.Logf("EICAR %s: %d %s %s (log: %s)", name, v.Code, v.Enhanced, v.Message, v.Reason)
			}
			// Over clamd's StreamMaxLength: an error (tempfail), never "clean".
			big := engText(strings.Repeat("All work and no play makes Jack a dull boy.\r\n", 40000))
			if v := c.Data(ctx, engTxn(), engMessage(big)); v.Action != filter.Tempfail {
				t.Errorf("message over StreamMaxLength: %+v", v)
			}
		})
	}
	d.stop()
	for onError, want := range map[string]filter.Action{"tempfail": filter.Tempfail, "accept": filter.Accept} {
		c, err := clamav.New(clamav.Options{Address: tcpAddr, OnError: onError})
		if err != nil {
			t.Fatal(err)
		}
		if v := c.Data(ctx, engTxn(), engMessage(engText(engEICAR))); v.Action != want {
			t.Errorf("clamd down, on_error=%s: %+v", onError, v)
		}
	}
}

// startSpamd runs spamd on a loopback port with a site config of its own: the plugin loaders (*.pre) from
// /etc/spamassassin and a local.cf that turns off everything that needs the network or a database.
func startSpamd(t *testing.T) string {
	bin := needTool(t, "spamd")
	// Not t.TempDir (mode 0700): spamd started as root drops to nobody, which must read the site config.
	site, err := os.MkdirTemp("", "postern-spamd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(site) })
	if err := os.Chmod(site, 0o755); err != nil {
		t.Fatal(err)
	}
	pres, _ := filepath.Glob("/etc/spamassassin/*.pre")
	if len(pres) == 0 {
		t.Fatal("no /etc/spamassassin/*.pre: spamassassin not installed completely")
	}
	for _, p := range pres {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(site, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	local := "use_bayes 0\nskip_rbl_checks 1\ndns_available no\nuse_razor2 0\nuse_pyzor 0\nuse_auto_whitelist 0\n"
	if err := os.WriteFile(filepath.Join(site, "local.cf"), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := startDaemon(t, bin, "--listen="+addr, "--siteconfigpath="+site, "--max-children=2", "--nouser-config",
		"--syslog=stderr", "--pidfile="+filepath.Join(t.TempDir(), "spamd.pid"))
	c, err := spamd.New(spamd.Options{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	d.waitReady(t, "spamd", func() error { return c.Ping(context.Background()) })
	return addr
}

func TestFilterEnginesSpamd(t *testing.T) {
	addr := startSpamd(t)
	ctx := context.Background()
	c, err := spamd.New(spamd.Options{Address: addr, User: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	txn := engTxn()
	v := c.Data(ctx, txn, engMessage(engText(engGTUBE)))
	res, _ := txn.Values["spamd"].(spamd.Result)
	if v.Action != filter.Tag || v.Symbol != "SPAMD" || v.Score < 1000 || !res.Spam || !containsStr(res.Symbols, "GTUBE") {
		t.Fatalf("GTUBE: verdict %+v, result %+v", v, res)
	}
	t.Logf("GTUBE: %s", v.Reason)
	ham := engText("Hi Bob,\r\n\r\nshall we meet for lunch on Thursday at noon, at the usual place?\r\n\r\nAlice")
	v = c.Data(ctx, engTxn(), engMessage(ham))
	if v.Score >= 5 {
		t.Errorf("ham scored as spam: %+v", v)
	}
	t.Logf("ham: %s", v.Reason)

	// Through a pipeline: spamd's score against the thresholds rejects GTUBE with 554 at DATA.
	p := filter.New(filter.Options{Checks: []filter.Check{c}, JunkScore: 5, RejectScore: 15, SpamHeaders: true})
	s, _ := p.Connect(ctx, filter.Conn{IP: netip.MustParseAddr("192.0.2.7")})
	from, _ := mail.ParseAddress("alice@example.org")
	to, _ := mail.ParseAddress("bob@example.net")
	s.Mail(ctx, "Q2", from)
	s.Rcpt(ctx, to)
	if o := s.Data(ctx, engMessage(engText(engGTUBE))); o.Verdict.Action != filter.Reject {
		t.Errorf("pipeline with GTUBE: %+v", o)
	}
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// startRspamd runs rspamd's normal worker on a loopback port with Debian's config, the local overrides in a temp
// dir: no proxy or fuzzy worker, console logging, DNS pointed at a closed port (no network), no Redis (the modules
// that need it stay off by themselves).
func startRspamd(t *testing.T) string {
	bin := needTool(t, "rspamd")
	if _, err := os.Stat("/etc/rspamd/rspamd.conf"); err != nil {
		t.Fatalf("rspamd config: %v", err)
	}
	dir := t.TempDir()
	port, ctrl := freePort(t), freePort(t)
	files := map[string]string{
		"local.d/worker-normal.inc":     fmt.Sprintf("bind_socket = \"127.0.0.1:%d\";\ncount = 1;\n", port),
		"local.d/worker-controller.inc": fmt.Sprintf("bind_socket = \"127.0.0.1:%d\";\ncount = 1;\n", ctrl),
		"override.d/worker-proxy.inc":   "enabled = false;\n",
		"local.d/worker-fuzzy.inc":      "enabled = false;\n",
		"local.d/logging.inc":           "type = \"console\";\nlevel = \"notice\";\n",
		"local.d/options.inc":           "dns { nameserver = [\"127.0.0.1:1\"]; timeout = 0.2s; retransmits = 1; }\n",
		// Without DNS a plain message scores 4 to 7 depending on which lookups time out first; rspamd's greylist
		// action (from 4) would make the ham check flaky. The action mapping itself is unit-tested.
		"local.d/actions.conf": "greylist = null;\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, "local", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range []string{"db", "run"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemon(t, bin, "-f", "--insecure", "-c", "/etc/rspamd/rspamd.conf",
		"--var=LOCAL_CONFDIR="+filepath.Join(dir, "local"), "--var=DBDIR="+filepath.Join(dir, "db"),
		"--var=RUNDIR="+filepath.Join(dir, "run"), "--var=LOGDIR="+dir)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	c, err := rspamd.New(rspamd.Options{URL: base})
	if err != nil {
		t.Fatal(err)
	}
	d.waitReady(t, "rspamd", func() error { return c.Ping(context.Background()) })
	return base
}

func TestFilterEnginesRspamd(t *testing.T) {
	base := startRspamd(t)
	ctx := context.Background()
	c, err := rspamd.New(rspamd.Options{URL: base})
	if err != nil {
		t.Fatal(err)
	}
	txn := engTxn()
	v := c.Data(ctx, txn, engMessage(engText(engGTUBE)))
	res, _ := txn.Values["rspamd"].(rspamd.Result)
	if v.Action != filter.Reject || v.Code != 554 {
		t.Fatalf("GTUBE: verdict %+v, result %+v", v, res)
	}
	t.Logf("GTUBE: %s (%s)", v.Message, v.Reason)
	ham := engText("Hi Bob,\r\n\r\nshall we meet for lunch on Thursday at noon, at the usual place?\r\n\r\nAlice")
	v = c.Data(ctx, engTxn(), engMessage(ham))
	// Without DNS rspamd adds a few points for unresolvable names (it may even say "add header"); what matters
	// here is that a plain message is not refused.
	if v.Action >= filter.Tempfail {
		t.Errorf("ham: %+v", v)
	}
	t.Logf("ham: %s", v.Reason)
}

// TestFilterEnginesClamavMilter drives a real milter, Debian's clamav-milter in front of the clamd above: EICAR is
// refused through the milter's reply, a clean message passes with the X-Virus-* headers the milter adds
// (AddHeader Replace: smfi_chgheader on absent fields, which Postern adds), and OnInfected Quarantine files it
// into Junk.
func TestFilterEnginesClamavMilter(t *testing.T) {
	bin := needTool(t, "clamav-milter")
	_, clamdAddr, _ := startClamd(t)
	for _, onInfected := range []string{"Reject", "Quarantine"} {
		t.Run(onInfected, func(t *testing.T) {
			dir := t.TempDir()
			port := freePort(t)
			conf := fmt.Sprintf("Foreground yes\nMilterSocket inet:%d@127.0.0.1\nClamdSocket %s\nOnInfected %s\n"+
				"AddHeader Replace\nLogFile %s\nLogInfected Full\nPidFile %s\n", port, clamdAddr, onInfected,
				filepath.Join(dir, "milter.log"), filepath.Join(dir, "milter.pid"))
			if os.Geteuid() == 0 {
				conf += "User root\n"
			}
			cf := filepath.Join(dir, "clamav-milter.conf")
			if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			d := startDaemon(t, bin, "-c", cf)
			addr := fmt.Sprintf("tcp:127.0.0.1:%d", port)
			d.waitReady(t, "clamav-milter", func() error {
				c, err := net.Dial("tcp", addr[len("tcp:"):])
				if err == nil {
					c.Close()
				}
				return err
			})
			c, err := milter.New(milter.Options{Address: addr, Hostname: "mx.example.net"})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			v := c.Data(ctx, engTxn(), engMessage(engText("Shall we meet at noon?")))
			if v.Action >= filter.Tempfail || !hasHeader(v.Headers, "X-Virus-Status", "Clean") {
				t.Errorf("clean message: %+v", v)
			}
			v = c.Data(ctx, engTxn(), engMessage(engAttachment("eicar.com", []byte(engEICAR))))
			switch onInfected {
			case "Reject":
				if v.Action != filter.Reject || v.Code < 500 {
					t.Errorf("EICAR through the milter: %+v", v)
				}
			case "Quarantine":
				if v.Action != filter.Tag || !v.Junk {
					t.Errorf("EICAR through the milter, quarantined: %+v", v)
				}
			}
			t.Logf("EICAR through clamav-milter (OnInfected %s): %+v", onInfected, v)
		})
	}
}

func hasHeader(hs []filter.Header, name, valuePrefix string) bool {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) && strings.HasPrefix(h.Value, valuePrefix) {
			return true
		}
	}
	return false
}
