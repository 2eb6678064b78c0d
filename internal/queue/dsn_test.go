package queue

import (
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/store"
)

func TestBuildDSNHeadersOnly(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b, err := buildDSN(report{Hostname: "mail.local.test", QueueID: "Q9", To: "alice@local.test", Arrival: now, Date: now,
		Original: strings.NewReader("Subject: x\r\nTo: y\r\n\r\nSECRET BODY\r\n"), OriginalLen: 30,
		Recipients: []reportRecipient{{OutboundRecipient: store.OutboundRecipient{Address: "ñu@remote.test"}, Action: actionFailed,
			Status: "5.1.1", Diagnostic: "550 5.1.1 no\r\nsuch user"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"Content-Type: text/rfc822-headers", "Subject: x\r\nTo: y\r\n", "Final-Recipient: utf-8; ñu@remote.test",
		"Status: 5.1.1", "Action: failed", "\r\nFrom: Mail Delivery System <MAILER-DAEMON@mail.local.test>\r\n"[2:]} {
		if !strings.Contains(s, want) {
			t.Errorf("DSN lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "SECRET BODY") {
		t.Error("headers-only DSN returned the body")
	}
	if strings.Contains(s, "no\r\nsuch") {
		t.Error("a multi-line diagnostic was not folded into one field line")
	}
	if strings.Contains(s, "Remote-MTA") {
		t.Error("Remote-MTA without a remote")
	}
}

func TestStatusOf(t *testing.T) {
	for in, want := range map[string]string{"451 4.7.1 Greylisted": "4.7.1", "421 busy": "4.0.0", "": "4.0.0", "450 4.2.0": "4.2.0"} {
		if got := statusOf(in); got != want {
			t.Errorf("statusOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzStatusOf(f *testing.F) {
	for _, s := range []string{"451 4.7.1 Greylisted", "421 busy", "", "4 4."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := statusOf(s); len(got) < 5 {
			t.Fatalf("statusOf(%q) = %q", s, got)
		}
	})
}
