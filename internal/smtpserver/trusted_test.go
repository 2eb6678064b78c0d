package smtpserver

import (
	"context"
	"sync"
	"testing"

	"github.com/postern/postern/internal/filter"
)

// trustProbe records filter.Conn.Trusted at connect.
type trustProbe struct {
	mu      sync.Mutex // guards trusted
	trusted []bool
}

func (p *trustProbe) Name() string { return "trust" }

func (p *trustProbe) Connect(_ context.Context, t *filter.Txn) filter.Verdict {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trusted = append(p.trusted, t.Conn.Trusted)
	return filter.Verdict{}
}

// TestFilterConnTrusted: the checks learn at connect that the MX listener's access table trusts the client (OK,
// RELAY), so the ones that only refuse before DATA can skip it; the submission listeners trust no one that way.
func TestFilterConnTrusted(t *testing.T) {
	for _, tc := range []struct {
		mode   Mode
		access string
		want   bool
	}{{ModeMX, "", false}, {ModeMX, "OK", true}, {ModeMX, "RELAY", true},
		{ModeSubmission, "OK", false}} {
		probe := &trustProbe{}
		f := newFixture(t, tc.mode, func(o *Options) {
			o.Filters = filter.New(filter.Options{Checks: []filter.Check{probe}})
		})
		f.dir.mu.Lock()
		if tc.access != "" {
			f.dir.access["127.0.0.1"] = tc.access
		}
		f.dir.mu.Unlock()
		c := f.dial(t)
		c.expect("220 ")
		c.send("QUIT")
		c.expect("221 ")
		probe.mu.Lock()
		got := probe.trusted
		probe.mu.Unlock()
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("%v access %q: Trusted %v, want %v", tc.mode, tc.access, got, tc.want)
		}
	}
}
