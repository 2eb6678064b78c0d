package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/postern/postern/bench/internal/benchutil"
)

// Markers around the generated part of docs/benchmarks.md; what is outside them is kept as written.
const (
	beginMarker = "<!-- bench/run.sh: generated from here -->"
	endMarker   = "<!-- bench/run.sh: generated up to here -->"
	sectionHead = "## Side by side with Postfix and Dovecot"
)

// row is one line of the table: a metric of a workload, Postern against one peer.
type row struct {
	workload, metric, label, peer string
	higherBetter                  bool
}

var rows = []row{
	{"smtp", "accept_msgs_per_s", "SMTP: messages/s answered 250", "postfix", true},
	{"smtp", "delivered_msgs_per_s", "SMTP: messages/s in the recipient's mailbox", "postfix", true},
	{"imap", "ops_per_s", "IMAP mix: commands/s", "dovecot", true},
	{"imap", "p50_ms", "IMAP mix: latency p50 (ms)", "dovecot", false},
	{"imap", "p99_ms", "IMAP mix: latency p99 (ms)", "dovecot", false},
	{"pop3", "retr_msgs_per_s", "POP3: RETR messages/s", "dovecot", true},
	{"idle*", "conns_open", "%s idle IMAP: connections held", "dovecot", true},
	{"idle*", "pss_per_conn_kib", "%s idle IMAP: PSS KiB per connection", "dovecot", false},
	{"idle*", "rss_per_conn_kib", "%s idle IMAP: RSS KiB per connection", "dovecot", false},
	{"idle*", "pss_per_conn_kib_early", "%s idle IMAP: PSS KiB per connection, 3 s after the logins", "dovecot", false},
	{"idle*", "pss_after_kib", "%s idle IMAP: PSS KiB of all server processes", "dovecot", false},
	{"idle*", "logins_per_s", "%s idle IMAP: LOGIN+SELECT+IDLE per second while opening", "dovecot", true},
	{"notify", "p50_ms", "SMTP -> IDLE EXISTS: p50 (ms)", "postfix+dovecot", false},
	{"notify", "p99_ms", "SMTP -> IDLE EXISTS: p99 (ms)", "postfix+dovecot", false},
}

var diskRows = []struct{ metric, label string }{
	{"append_fdatasync_per_s", "append 4 KiB + fdatasync, one writer"},
	{"append_batched_records_per_s", "append 4 KiB, one fdatasync per batch"},
	{"newfile_fsync_dirsync_per_s", "new 4 KiB file + fsync + directory fsync, one writer"},
	{"newfile_parallel_per_s", "the same, parallel writers"},
}

// cmdReport turns a results file into the side-by-side table and writes it into the doc between the markers
// (adding the section when the doc has none yet).
func cmdReport(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	in := fs.String("results", "", "results file (JSON Lines)")
	meta := fs.String("meta", "", "file of 'key: value' lines about the machine and versions")
	doc := fs.String("doc", "docs/benchmarks.md", "document to write the table into")
	fs.Parse(args)
	results, err := readResults(*in)
	if err != nil {
		return err
	}
	metaText, err := os.ReadFile(*meta)
	if err != nil {
		return err
	}
	return writeDoc(*doc, render(results, string(metaText)))
}

func readResults(path string) ([]benchutil.Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []benchutil.Result
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r benchutil.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// values returns the metric's values over the runs of workload on server.
func values(rs []benchutil.Result, workload, server, metric string) []float64 {
	var v []float64
	for _, r := range rs {
		if x, ok := r.Metrics[metric]; ok && r.Workload == workload && r.Server == server {
			v = append(v, x)
		}
	}
	return v
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cell renders the median of v with the range of the runs.
func cell(v []float64) string {
	if len(v) == 0 {
		return "—"
	}
	if len(v) == 1 {
		return num(v[0])
	}
	return fmt.Sprintf("**%s** (%s–%s, %d runs)", num(median(v)), num(slices.Min(v)), num(slices.Max(v)), len(v))
}

func num(x float64) string {
	switch {
	case x >= 100:
		return commas(fmt.Sprintf("%.0f", x))
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

func commas(s string) string {
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func render(rs []benchutil.Result, meta string) string {
	var b strings.Builder
	b.WriteString(beginMarker + "\n")
	for _, line := range strings.Split(strings.TrimSpace(meta), "\n") {
		fmt.Fprintf(&b, "- %s\n", line)
	}
	b.WriteString("\nMedians over the runs (range and number of runs in parentheses). Postern/peer > 1 means Postern is ")
	b.WriteString("higher; the last column says who is better on that line.\n\n")
	b.WriteString("| measure | Postern | peer | peer's number | Postern/peer | better |\n|---|---|---|---|---|---|\n")
	for _, r := range expandIdle(rs) {
		pv, qv := values(rs, r.workload, "postern", r.metric), values(rs, r.workload, r.peer, r.metric)
		if len(pv) == 0 && len(qv) == 0 {
			continue
		}
		ratio, better := "—", "—"
		if len(pv) > 0 && len(qv) > 0 && median(qv) != 0 {
			q := median(pv) / median(qv)
			ratio = fmt.Sprintf("%.2f", q)
			switch {
			case q == 1:
				better = "="
			case (q > 1) == r.higherBetter:
				better = "Postern"
			default:
				better = r.peer
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.label, cell(pv), r.peer, cell(qv), ratio, better)
	}
	b.WriteString("\nThe disk's own ceiling (4 KiB records, same file system as the servers' data):\n\n")
	b.WriteString("| durable writes | per second |\n|---|---|\n")
	for _, d := range diskRows {
		if v := values(rs, "fsync", "disk", d.metric); len(v) > 0 {
			fmt.Fprintf(&b, "| %s | %s |\n", d.label, cell(v))
		}
	}
	notes := map[string]bool{}
	for _, r := range rs {
		if r.Note != "" && !notes[r.Server+r.Workload+r.Note] {
			if len(notes) == 0 {
				b.WriteString("\nNotes recorded by the run:\n\n")
			}
			notes[r.Server+r.Workload+r.Note] = true
			fmt.Fprintf(&b, "- %s, %s run %d: %s\n", r.Server, r.Workload, r.Run, r.Note)
		}
	}
	b.WriteString(endMarker + "\n")
	return b.String()
}

// expandIdle repeats the idle* rows for each idle connection count in the results, smallest first.
func expandIdle(rs []benchutil.Result) []row {
	var sizes []int
	for _, r := range rs {
		var n int
		if _, err := fmt.Sscanf(r.Workload, "idle%d", &n); err == nil && !slices.Contains(sizes, n) {
			sizes = append(sizes, n)
		}
	}
	slices.Sort(sizes)
	var out []row
	done := false
	for _, r := range rows {
		if r.workload != "idle*" {
			out = append(out, r)
			continue
		}
		if done {
			continue
		}
		done = true // all idle rows go here, grouped by connection count
		for _, n := range sizes {
			for _, t := range rows {
				if t.workload == "idle*" {
					t.workload, t.label = fmt.Sprintf("idle%d", n), fmt.Sprintf(t.label, commas(fmt.Sprint(n)))
					out = append(out, t)
				}
			}
		}
	}
	return out
}

// writeDoc replaces the generated part of the doc, or appends the section with it.
func writeDoc(path, generated string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	switch {
	case i >= 0 && j > i:
		end := j + len(endMarker)
		if end < len(s) && s[end] == '\n' {
			end++
		}
		s = s[:i] + generated + s[end:]
	case i >= 0 || j >= 0:
		return errors.New(path + ": only one of the generated-part markers is there; fix it by hand")
	default:
		s = strings.TrimRight(s, "\n") + "\n\n" + sectionHead + "\n\n" + generated
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
