package sqlite

import (
	"fmt"
	"strings"
	"testing"

	"github.com/postern/postern/internal/store"
)

func TestApplyFlags(t *testing.T) {
	tests := []struct {
		cur, flags []string
		op         store.FlagOp
		want       string
		changed    bool
	}{
		{[]string{}, []string{`\Seen`}, store.FlagsAdd, `[\Seen]`, true},
		{[]string{`\Seen`}, []string{`\Seen`}, store.FlagsAdd, `[\Seen]`, false},
		{[]string{`$Work`}, []string{`$work`, `\Flagged`}, store.FlagsAdd, `[$Work \Flagged]`, true},
		{[]string{`$Work`, `\Seen`}, []string{`$WORK`}, store.FlagsRemove, `[\Seen]`, true},
		{[]string{`\Seen`}, []string{`$x`}, store.FlagsRemove, `[\Seen]`, false},
		{[]string{`$A`, `\Seen`}, []string{`\Seen`, `$a`}, store.FlagsReplace, `[$A \Seen]`, false},
		{[]string{`$A`, `\Seen`}, []string{`$a`}, store.FlagsReplace, `[$A]`, true},
		{[]string{`$A`}, []string{}, store.FlagsReplace, `[]`, true},
	}
	for _, tt := range tests {
		got, changed := applyFlags(tt.cur, tt.op, tt.flags)
		if fmt.Sprint(got) != tt.want || changed != tt.changed {
			t.Errorf("applyFlags(%v, %d, %v) = %v, %v; want %s, %v", tt.cur, tt.op, tt.flags, got, changed, tt.want, tt.changed)
		}
	}
}

// FuzzFlags checks the invariants of flag handling on any input: stored flags are valid, unique case-insensitively,
// never \Recent, and system flags are canonical; applying an operation twice changes nothing the second time.
func FuzzFlags(f *testing.F) {
	f.Add(`\seen $Work`, `\SEEN \recent $work`, uint8(0))
	f.Add(`\Answered`, `\Deleted \Flagged`, uint8(1))
	f.Add(`$a $B`, `$b`, uint8(2))
	f.Fuzz(func(t *testing.T, cur, req string, op uint8) {
		curFlags := validFlags(strings.Split(cur, " "))
		reqFlags, err := normFlags(strings.Split(req, " "))
		if err != nil {
			return
		}
		fop := store.FlagOp(op % 3)
		got, _ := applyFlags(curFlags, fop, reqFlags)
		for i, f := range got {
			if checkFlag(f) != nil || strings.EqualFold(f, recentFlag) || canonFlag(f) != f || hasFlag(got[:i], f) {
				t.Fatalf("applyFlags(%q, %d, %q) = %q: bad flag %q", curFlags, fop, reqFlags, got, f)
			}
		}
		if again, changed := applyFlags(got, fop, reqFlags); changed || !sameFlags(again, got) {
			t.Fatalf("second application changed %q to %q", got, again)
		}
		if back := splitFlags(joinFlags(got)); !sameFlags(back, got) || len(back) != len(got) {
			t.Fatalf("round trip %q -> %q", got, back)
		}
	})
}

// FuzzUIDMatcher: the matcher agrees with UIDSet.Contains for ascending UIDs, whatever the ranges.
func FuzzUIDMatcher(f *testing.F) {
	f.Add([]byte{1, 3, 5, 0, 2, 2}, uint8(9))
	f.Add([]byte{9, 4, 1, 1}, uint8(12))
	f.Fuzz(func(t *testing.T, raw []byte, top uint8) {
		var set store.UIDSet
		for i := 0; i+1 < len(raw); i += 2 {
			set = append(set, store.UIDRange{Start: uint32(raw[i]), Stop: uint32(raw[i+1])})
		}
		m := newUIDMatcher(set)
		lo, hi := m.bounds()
		for uid := uint32(1); uid <= uint32(top)+1; uid++ {
			want := set.Contains(uid)
			if got := m.match(uid); got != want {
				t.Fatalf("set %v, UID %d: match %v, Contains %v", set, uid, got, want)
			}
			if want && (uid < lo || uid > hi) {
				t.Fatalf("set %v: UID %d outside bounds %d..%d", set, uid, lo, hi)
			}
		}
	})
}
