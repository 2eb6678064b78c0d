package engine

import (
	"io"
	"strings"
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

func TestClient(t *testing.T) {
	t.Parallel()
	if _, err := NewClient("x", Config{OnError: "drop"}, 0); err == nil {
		t.Error("NewClient with on_error=drop: no error")
	}
	cl, err := NewClient("x", Config{}, 100)
	if err != nil || cl.Timeout != DefaultTimeout || cl.MaxSize != 100 || cl.OnError != FailTempfail || cl.Log == nil {
		t.Fatalf("defaults: %+v, %v", cl, err)
	}
	if cl, _ := NewClient("x", Config{MaxSize: -1}, 100); cl.MaxSize != 0 {
		t.Errorf("negative MaxSize: %d, want 0 (no limit)", cl.MaxSize)
	}
	msg := func(raw string, size int64) *filter.Message {
		return &filter.Message{Size: size, Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(raw)), nil }}
	}
	if b, _, ok := cl.ReadMessage("Q", msg("hello", 5)); !ok || string(b) != "hello" {
		t.Errorf("small message: %q %v", b, ok)
	}
	// Over the limit by its size, or by what it really holds when Size lies: not sent, an accept with a reason.
	for _, m := range []*filter.Message{msg(strings.Repeat("x", 101), 101), msg(strings.Repeat("x", 500), 5)} {
		if _, v, ok := cl.ReadMessage("Q", m); ok || v.Action != filter.Accept || !strings.Contains(v.Reason, "not scanned") {
			t.Errorf("large message: %+v %v", v, ok)
		}
	}
	broken := &filter.Message{Size: 5, Open: func() (io.ReadCloser, error) { return nil, errTest }}
	if _, v, ok := cl.ReadMessage("Q", broken); ok || v.Action != filter.Tempfail {
		t.Errorf("unreadable message: %+v %v", v, ok)
	}
	if got := HeaderSafe("a\r\nb\x00c\x7fd é"); got != "abcd é" {
		t.Errorf("HeaderSafe = %q", got)
	}
}
