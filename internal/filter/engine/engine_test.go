package engine

import (
	"testing"

	"github.com/postern/postern/internal/filter"
)

func TestParseAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Addr
		err  bool
	}{
		{"tcp:127.0.0.1:3310", Addr{"tcp", "127.0.0.1:3310"}, false},
		{"127.0.0.1:783", Addr{"tcp", "127.0.0.1:783"}, false},
		{"tcp:[::1]:3310", Addr{"tcp", "[::1]:3310"}, false},
		{"unix:/run/clamav/clamd.ctl", Addr{"unix", "/run/clamav/clamd.ctl"}, false},
		{"local:/run/milter.sock", Addr{"unix", "/run/milter.sock"}, false},
		{"/run/x.sock", Addr{"unix", "/run/x.sock"}, false},
		{"inet:8891@127.0.0.1", Addr{"tcp", "127.0.0.1:8891"}, false},
		{"inet:8891", Addr{"tcp", "localhost:8891"}, false},
		{"", Addr{}, true},
		{"unix:", Addr{}, true},
		{"tcp:host", Addr{}, true},
		{"tcp::25", Addr{}, true},
	} {
		got, err := ParseAddr(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("ParseAddr(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestOnError(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]OnError{"": FailTempfail, "tempfail": FailTempfail, "Accept": FailAccept} {
		if got, err := ParseOnError(in); got != want || err != nil {
			t.Errorf("ParseOnError(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseOnError("reject"); err == nil {
		t.Error(`ParseOnError("reject"): no error`)
	}
	if v := Failure(FailTempfail, Logger(nil), "x", errTest); v.Action != filter.Tempfail || v.Code != 451 {
		t.Errorf("tempfail verdict %+v", v)
	}
	if v := Failure(FailAccept, Logger(nil), "x", errTest); v.Action != filter.Accept || v.Reason == "" {
		t.Errorf("accept verdict %+v", v)
	}
}

type testErr struct{}

func (testErr) Error() string { return "boom" }

var errTest = testErr{}

func FuzzParseAddr(f *testing.F) {
	f.Add("tcp:127.0.0.1:3310")
	f.Add("inet:8891@localhost")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddr(s)
		if err == nil && a.Network != "tcp" && a.Network != "unix" {
			t.Errorf("ParseAddr(%q) network %q", s, a.Network)
		}
	})
}
