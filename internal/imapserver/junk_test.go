package imapserver

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeTrainer records what it was taught.
type fakeTrainer struct {
	mu    sync.Mutex
	calls []string
	got   chan struct{}
}

func (f *fakeTrainer) TrainJunk(_ context.Context, userID int64, blobs []string, spam bool) {
	f.mu.Lock()
	kind := "ham"
	if spam {
		kind = "spam"
	}
	for range blobs {
		f.calls = append(f.calls, kind)
	}
	f.mu.Unlock()
	f.got <- struct{}{}
}

// wait returns what was taught once n calls arrived.
func (f *fakeTrainer) wait(t *testing.T, n int) []string {
	t.Helper()
	for range n {
		select {
		case <-f.got:
		case <-time.After(5 * time.Second):
			t.Fatalf("trainer not called; so far %v", f.calls)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func TestJunkTraining(t *testing.T) {
	tr := &fakeTrainer{got: make(chan struct{}, 16)}
	e := newEnv(t, func(o *Options) { o.JunkTrainer = tr })
	e.deliver("INBOX", "Subject: one\r\n\r\nx\r\n")
	e.deliver("INBOX", "Subject: two\r\n\r\nx\r\n")
	e.deliver("INBOX", "Subject: three\r\n\r\nx\r\n")
	tc := e.login()
	tc.cmd("a1 SELECT INBOX").ok()
	tc.cmd("a2 COPY 1 Drafts").ok() // neither into nor out of Junk: nothing learnt
	tc.cmd("a3 MOVE 1 Junk").ok()
	if got := tr.wait(t, 1); !slices.Equal(got, []string{"spam"}) {
		t.Fatalf("after MOVE into Junk: %v", got)
	}
	tc.cmd("a4 STORE 1 +FLAGS ($NotJunk)").ok()
	if got := tr.wait(t, 1); !slices.Equal(got, []string{"spam", "ham"}) {
		t.Fatalf("after $NotJunk: %v", got)
	}
	tc.cmd("a5 STORE 1 -FLAGS ($NotJunk)").ok() // removing a keyword teaches nothing
	tc.cmd("a6 SELECT Junk").ok()
	tc.cmd("a7 MOVE 1 Trash").ok() // deleting spam is no verdict
	tc.cmd("a8 SELECT INBOX").ok()
	tc.cmd("a9 MOVE 1 Junk").ok()
	tc.cmd("b1 SELECT Junk").ok()
	tc.cmd("b2 MOVE 1 INBOX").ok() // "not junk" in a client
	if got := tr.wait(t, 2); !slices.Equal(got, []string{"spam", "ham", "spam", "ham"}) {
		t.Fatalf("after moving back: %v", got)
	}
	tc.cmd("b3 SELECT INBOX").ok()
	tc.cmd("b4 STORE 1 FLAGS (\\Seen Junk)").ok()
	if got := tr.wait(t, 1); got[len(got)-1] != "spam" || len(got) != 5 {
		t.Fatalf("after FLAGS Junk: %v", got)
	}
}
