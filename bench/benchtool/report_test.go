package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/bench/internal/benchutil"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{7}, 7}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestNum(t *testing.T) {
	for in, want := range map[float64]string{1234567: "1,234,567", 512: "512", 42.25: "42.2", 1.234: "1.23"} {
		if got := num(in); got != want {
			t.Errorf("num(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestRenderRatioAndWinner(t *testing.T) {
	rs := []benchutil.Result{
		{Workload: "smtp", Server: "postern", Run: 1, Metrics: map[string]float64{"accept_msgs_per_s": 600}},
		{Workload: "smtp", Server: "postern", Run: 2, Metrics: map[string]float64{"accept_msgs_per_s": 400}},
		{Workload: "smtp", Server: "postern", Run: 3, Metrics: map[string]float64{"accept_msgs_per_s": 500}},
		{Workload: "smtp", Server: "postfix", Run: 1, Metrics: map[string]float64{"accept_msgs_per_s": 1000}},
		{Workload: "imap", Server: "postern", Run: 1, Metrics: map[string]float64{"p50_ms": 2}},
		{Workload: "imap", Server: "dovecot", Run: 1, Metrics: map[string]float64{"p50_ms": 4}},
		{Workload: "idle500", Server: "postern", Run: 1, Metrics: map[string]float64{"pss_per_conn_kib": 100}},
		{Workload: "idle500", Server: "dovecot", Run: 1, Metrics: map[string]float64{"pss_per_conn_kib": 100}},
	}
	out := render(rs, "Machine: test")
	for _, want := range []string{
		"| SMTP: messages/s answered 250 | **500** (400–600, 3 runs) | postfix | 1,000 | 0.50 | postfix |",
		"| IMAP mix: latency p50 (ms) | 2.00 | dovecot | 4.00 | 0.50 | Postern |",
		"| 500 idle IMAP: PSS KiB per connection | 100 | dovecot | 100 | 1.00 | = |",
		"- Machine: test",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

func TestWriteDocKeepsTheRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.md")
	if err := os.WriteFile(path, []byte("# Benchmarks\n\nearlier text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeDoc(path, beginMarker+"\nfirst\n"+endMarker+"\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	// Prose written around the generated part survives the next run.
	doc := strings.Replace(string(b), endMarker+"\n", endMarker+"\n\nanalysis\n", 1)
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeDoc(path, beginMarker+"\nsecond\n"+endMarker+"\n"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	want := "# Benchmarks\n\nearlier text\n\n" + sectionHead + "\n\n" + beginMarker + "\nsecond\n" + endMarker + "\n\nanalysis\n"
	if string(b) != want {
		t.Errorf("doc:\n%s\nwant:\n%s", b, want)
	}
	if err := os.WriteFile(path, []byte("x\n"+beginMarker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeDoc(path, "y"); err == nil {
		t.Error("a doc with one marker must be refused, not rewritten")
	}
}
