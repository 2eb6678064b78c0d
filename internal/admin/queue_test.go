package admin

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/store"
	"github.com/postern/postern/internal/store/sqlite"
)

func TestQueueListAndShow(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	msg := "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: Hello\r\n\r\nSECRET BODY\r\n"
	ref, err := st.Blobs().Put(ctx, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	created := now.Add(-(2*time.Hour + 5*time.Minute))
	out := &store.OutboundMessage{ID: "Q1", From: "alice@a.test", BlobID: ref.ID, Size: ref.Size, CreatedAt: created,
		Attempts: 3, NextAttempt: now.Add(29*time.Minute + 30*time.Second), LastError: "451 4.4.1 No answer\r\n from host",
		Recipients: []store.OutboundRecipient{
			{Address: "bob@b.test", Status: "queued", Error: "451 4.4.1 No answer", Remote: "mx.b.test[192.0.2.2]"},
			{Address: "carol@b.test", Status: "sent"},
			{Address: "nobody@b.test", Status: "failed", Error: "550 5.1.1 No such user",
				Notice: &store.OutboundNotice{Action: "failed", Status: "5.1.1"}},
		}}
	if err := st.Deliver(ctx, &store.Delivery{QueueID: "Q1", Blob: ref, Outbound: out}); err != nil {
		t.Fatal(err)
	}
	a := New(st)
	q, err := a.QueueList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteQueueList(&b, q, now); err != nil {
		t.Fatal(err)
	}
	fields := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\t")
	want := []string{"Q1", "2h5m", fmt.Sprint(ref.Size), "<alice@a.test>",
		"bob@b.test (queued), carol@b.test (sent), nobody@b.test (failed, DSN pending)", "3", "in 29m (", "451 4.4.1 No answer from host"}
	if len(fields) != len(want) {
		t.Fatalf("queue list line %q", b.String())
	}
	for i := range want {
		if !strings.HasPrefix(fields[i], want[i]) {
			t.Errorf("column %d = %q, want %q", i, fields[i], want[i])
		}
	}
	b.Reset()
	if err := WriteQueueList(&b, nil, now); err != nil || b.Len() != 0 {
		t.Errorf("empty queue printed %q", b.String())
	}

	m, err := a.QueueShow(ctx, "Q1")
	if err != nil {
		t.Fatal(err)
	}
	h, err := a.QueueHeader(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteQueueEntry(&b, m, h, now); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, w := range []string{"Queue-ID:     Q1\n", "Attempts:     3\n", "Next-Attempt: in 29m", "Sender:       <alice@a.test>\n",
		"Recipient:    bob@b.test (queued): 451 4.4.1 No answer [mx.b.test[192.0.2.2]]\n", "\nFrom: alice@a.test\nTo: bob@b.test\nSubject: Hello\n"} {
		if !strings.Contains(s, w) {
			t.Errorf("queue show lacks %q:\n%s", w, s)
		}
	}
	if strings.Contains(s, "SECRET BODY") {
		t.Errorf("queue show printed the body:\n%s", s)
	}
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{-time.Second: "0s", 45 * time.Second: "45s", 12 * time.Minute: "12m",
		3*time.Hour + 4*time.Minute: "3h4m", 51 * time.Hour: "2d3h"} {
		if got := age(d); got != want {
			t.Errorf("age(%v) = %q, want %q", d, got, want)
		}
	}
}
