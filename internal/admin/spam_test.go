package admin

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/postern/postern/internal/store"
)

// fakeFilter records the messages it is taught; a message seen before is not learned again.
type fakeFilter struct {
	msgs []string
	spam []bool
}

func (f *fakeFilter) Train(_ context.Context, _ int64, spam bool, r io.Reader) (bool, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return false, err
	}
	if i := slices.Index(f.msgs, string(b)); i >= 0 && f.spam[i] == spam {
		return false, nil
	}
	f.msgs = append(f.msgs, string(b))
	f.spam = append(f.spam, spam)
	return true, nil
}

func (f *fakeFilter) Totals(context.Context, int64) (store.BayesCount, error) {
	var c store.BayesCount
	for _, s := range f.spam {
		if s {
			c.Spam++
		} else {
			c.Ham++
		}
	}
	return c, nil
}

func (f *fakeFilter) Ready(c store.BayesCount) bool { return c.Spam >= 2 && c.Ham >= 1 }

func TestSpamTrain(t *testing.T) {
	ctx := context.Background()
	fs := newFake("example.org")
	fs.users["u@example.org"] = store.User{ID: 7, Address: "u@example.org"}
	a := New(fs)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	one := write("one.eml", "Subject: one\r\n\r\nbody\r\n")
	mbox := write("box.mbox", "From a@b Mon Jan  1 00:00:00 2024\nSubject: two\n\n>From the start\n>>From kept\n"+
		"From c@d Mon Jan  1 00:00:00 2024\nSubject: three\n\nx\n")
	write("maildir/cur/1:2,S", "Subject: four\r\n\r\ny\r\n")
	write("maildir/new/.hidden", "not a message")
	f := &fakeFilter{}
	rep, err := a.SpamTrain(ctx, f, "U@Example.org", true, []string{one, mbox, filepath.Join(dir, "maildir")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Messages != 4 || rep.Learned != 4 || rep.Totals.Spam != 4 || rep.Ready {
		t.Fatalf("report %+v", rep)
	}
	want := []string{"Subject: one\r\n\r\nbody\r\n", "Subject: two\n\nFrom the start\n>From kept\n", "Subject: three\n\nx\n",
		"Subject: four\r\n\r\ny\r\n"}
	if !slices.Equal(f.msgs, want) {
		t.Fatalf("messages %q", f.msgs)
	}
	rep, err = a.SpamTrain(ctx, f, "u@example.org", false, []string{"-"}, strings.NewReader("Subject: ham\r\n\r\nz\r\n"))
	if err != nil || rep.Learned != 1 || !rep.Ready {
		t.Fatalf("stdin: %+v, %v", rep, err)
	}
	rep, err = a.SpamTrain(ctx, f, "u@example.org", true, []string{one}, nil)
	if err != nil || rep.Messages != 1 || rep.Learned != 0 {
		t.Fatalf("again: %+v, %v", rep, err)
	}
	if _, err := a.SpamTrain(ctx, f, "nobody@example.org", true, []string{one}, nil); err == nil || !strings.Contains(err.Error(), "no user") {
		t.Fatalf("unknown user: %v", err)
	}
	if _, err := a.SpamTrain(ctx, f, "u@example.org", true, []string{filepath.Join(dir, "missing")}, nil); err == nil {
		t.Fatal("missing file accepted")
	}
	tot, ready, err := a.SpamStatus(ctx, f, "u@example.org")
	if err != nil || tot != (store.BayesCount{Spam: 4, Ham: 1}) || !ready {
		t.Fatalf("status %+v %v %v", tot, ready, err)
	}
}

// FuzzMbox: the mbox splitter never fails on a readable stream, and a stream that is not an mbox is one message.
func FuzzMbox(f *testing.F) {
	f.Add([]byte("From a@b Mon Jan  1 00:00:00 2024\nSubject: x\n\n>From y\n\nFrom c Mon\n\nbody\n"))
	f.Add([]byte("Subject: plain\r\n\r\nbody\r\n"))
	f.Add([]byte("From \n>>>From\nFrom "))
	f.Fuzz(func(t *testing.T, in []byte) {
		var n, total int
		err := eachInStream("fuzz", strings.NewReader(string(in)), func(msg []byte) error {
			n++
			total += len(msg)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if total > len(in) {
			t.Fatalf("messages hold %d bytes of %d", total, len(in))
		}
		if !strings.HasPrefix(string(in), "From ") && n != 1 {
			t.Fatalf("%d messages from a stream that is not an mbox", n)
		}
	})
}

func TestMboxLongLine(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	in := "From a Mon\nSubject: one\n\n" + long + "\nFrom b Mon\nSubject: two\n\nshort\n"
	var got []string
	if err := eachInStream("t", strings.NewReader(in), func(m []byte) error { got = append(got, string(m)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "Subject: one\n\n"+long+"\n" || got[1] != "Subject: two\n\nshort\n" {
		t.Fatalf("%d messages, sizes %v", len(got), len(got))
	}
}
