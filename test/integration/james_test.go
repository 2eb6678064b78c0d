//go:build integration

package integration

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// jamesDir holds Apache James' SMTP protocol transcripts (../shared/testdata/james-mpt, Apache-2.0).
const jamesDir = "../../../shared/testdata/james-mpt/mpt/impl/smtp/core/src/main/resources/org/apache/james/smtp/scripts"

// step is one client line (sent raw, with \r\n escapes honoured) or one expected server line.
type step struct {
	client bool
	text   string
}

func parseTranscript(t *testing.T, path string) []step {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []step
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "C: "), l == "C:":
			steps = append(steps, step{true, strings.TrimPrefix(strings.TrimPrefix(l, "C:"), " ")})
		case strings.HasPrefix(l, "S: "):
			steps = append(steps, step{false, strings.TrimPrefix(l, "S: ")})
		}
	}
	return steps
}

// expectedReplies groups consecutive S: lines into replies the way SMTP does (a line whose 4th char is '-'
// continues); a leading "250.*" stands for the first line of an EHLO reply.
func expectedReplies(lines []string) [][]string {
	var out [][]string
	var cur []string
	for _, l := range lines {
		cur = append(cur, l)
		if l == "250.*" || len(l) >= 4 && l[3] == '-' {
			continue
		}
		out = append(out, cur)
		cur = nil
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out
}

// TestJamesSMTPTranscripts replays James' SMTP scripts against Postern. Reply codes are checked strictly; James'
// wording loosely; EHLO capabilities must include each keyword James expects, except its legacy "AUTH=" form.
func TestJamesSMTPTranscripts(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(jamesDir, "*.test"))
	if len(files) == 0 {
		t.Fatalf("no James transcripts under %s", jamesDir)
	}
	s := newServer(t, serverOptions{allowPlaintext: true, domain: "mydomain.tld"})
	s.addUser("bob@mydomain.tld", "secret")
	s.addUser("starttls@mydomain.tld", "secret-2")
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".test")
		t.Run(name, func(t *testing.T) {
			replayJames(t, s, parseTranscript(t, path))
		})
	}
}

func replayJames(t *testing.T, s *server, steps []step) {
	tc := dial(t, s.addr(s.ports.SMTP))
	for i := 0; i < len(steps); {
		if steps[i].client {
			raw := strings.ReplaceAll(steps[i].text, `\r\n`, "\r\n")
			if strings.HasSuffix(raw, "\r\n") {
				tc.write(raw)
			} else {
				tc.send(raw)
			}
			i++
			continue
		}
		var lines []string
		for i < len(steps) && !steps[i].client {
			lines = append(lines, steps[i].text)
			i++
		}
		for _, want := range expectedReplies(lines) {
			code, got := tc.reply()
			checkJamesReply(t, want, code, got)
		}
	}
}

func checkJamesReply(t *testing.T, want []string, code int, got []string) {
	t.Helper()
	wantCode := want[len(want)-1][:3]
	if strings.HasPrefix(want[0], "250.*") {
		wantCode = "250"
	}
	if strconv.Itoa(code) != wantCode {
		t.Fatalf("got %q, James expects %q", got, want)
	}
	if len(want) > 1 { // an EHLO reply: check the capabilities
		have := map[string]bool{}
		for _, g := range got[1:] {
			f := strings.Fields(strings.ToUpper(g[4:]))
			if len(f) > 0 {
				have[f[0]] = true
			}
		}
		for _, w := range want[1:] {
			f := strings.Fields(strings.ToUpper(w[4:]))
			if len(f) == 0 || strings.HasPrefix(f[0], "AUTH=") {
				continue
			}
			if !have[f[0]] {
				t.Errorf("EHLO lacks %s: got %q", f[0], got)
			}
		}
		return
	}
	if re := want[0]; strings.Contains(re, ".*") {
		if !regexp.MustCompile("^" + re).MatchString(got[len(got)-1]) {
			t.Errorf("reply %q does not match James' %q", got, re)
		}
	}
}
