package maillog

import (
	"bytes"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, func() time.Time { return time.Date(2026, 11, 23, 3, 37, 6, 0, time.UTC) })
	l.Log(Event{QueueID: "7QXH3K2M9", Event: "delivered", From: "a@b", To: "c@d", Size: 1234, Status: "250 2.0.0", Detail: `said "hi"`})
	l.Log(Event{Event: "received", Remote: "192.0.2.1"})
	want := `2026-11-23T03:37:06Z 7QXH3K2M9 delivered from=<a@b> to=<c@d> size=1234 status="250 2.0.0" detail="said \"hi\""` + "\n" +
		"2026-11-23T03:37:06Z - received from=<> remote=192.0.2.1\n"
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
	var nilLogger *Logger
	nilLogger.Log(Event{Event: "x"}) // must not panic
}
