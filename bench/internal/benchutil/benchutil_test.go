package benchutil

import (
	"bytes"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := Percentile(ds, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("empty input must give 0")
	}
}

func TestMessage(t *testing.T) {
	m := Message(7, 4096, "u@bench.test")
	if len(m) < 4096 || len(m) > 4096+200 {
		t.Errorf("size %d, want about 4096", len(m))
	}
	if !bytes.Contains(m, []byte("Subject: bench message 7 topic 7\r\n")) || !bytes.Contains(m, []byte("\r\n\r\n")) {
		t.Errorf("message lacks its subject or header/body separator:\n%s", m[:300])
	}
	if !bytes.Equal(m, Message(7, 4096, "u@bench.test")) {
		t.Error("messages must be deterministic")
	}
}

func TestUser(t *testing.T) {
	if got := User("bench%d@x", 3); got != "bench3@x" {
		t.Errorf("User = %q", got)
	}
	if got := User("pop@x", 3); got != "pop@x" {
		t.Errorf("User = %q", got)
	}
}
