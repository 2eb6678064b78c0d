package bayes

import (
	"context"
	"strings"
	"testing"

	"github.com/postern/postern/internal/store"
)

// TestTrainer: moving a message into Junk twice counts once, moving it out moves it to ham, a missing blob is
// skipped without failing the rest.
func TestTrainer(t *testing.T) {
	ctx := context.Background()
	st, uid := openStore(t)
	c, _ := New(Options{Store: st})
	tr := NewTrainer(c, st.Blobs(), 0, nil)
	a, err := st.Blobs().Put(ctx, strings.NewReader("Subject: a\r\n\r\ncheap pills\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := st.Blobs().Put(ctx, strings.NewReader("Subject: b\r\n\r\nwin money\r\n"))
	steps := []struct {
		blobs []string
		spam  bool
		want  store.BayesCount
	}{
		{[]string{a.ID, "missing", b.ID}, true, store.BayesCount{Spam: 2}},
		{[]string{a.ID}, true, store.BayesCount{Spam: 2}},
		{[]string{a.ID}, false, store.BayesCount{Spam: 1, Ham: 1}},
	}
	for i, s := range steps {
		tr.TrainJunk(ctx, uid, s.blobs, s.spam)
		if got, _ := c.Totals(ctx, uid); got != s.want {
			t.Fatalf("step %d: totals %+v, want %+v", i, got, s.want)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	tr.TrainJunk(cctx, uid, []string{b.ID}, false) // a cancelled context stops training without a panic
}
