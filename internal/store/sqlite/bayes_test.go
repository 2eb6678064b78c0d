package sqlite

import (
	"context"
	"testing"

	"github.com/postern/postern/internal/store"
)

// TestBayesLearn trains, re-trains in the same class (no change), moves to the other class and forgets one
// message, and checks the totals and token counts after each step.
func TestBayesLearn(t *testing.T) {
	for _, group := range []bool{true, false} {
		s, u, _ := fixture(t, group)
		ctx := context.Background()
		learn := func(req store.BayesLearnRequest, wantChanged bool) {
			t.Helper()
			req.UserID = u.ID
			changed, err := s.BayesLearn(ctx, req)
			if err != nil || changed != wantChanged {
				t.Fatalf("BayesLearn(%+v) = %v, %v; want %v", req, changed, err, wantChanged)
			}
		}
		check := func(spam, ham int64, tok int64, want store.BayesCount, present bool) {
			t.Helper()
			tot, err := s.BayesTotals(ctx, u.ID)
			if err != nil || tot != (store.BayesCount{Spam: spam, Ham: ham}) {
				t.Fatalf("totals = %+v, %v; want %d spam, %d ham", tot, err, spam, ham)
			}
			m, err := s.BayesTokens(ctx, u.ID, []int64{tok, 999})
			if err != nil {
				t.Fatal(err)
			}
			got, ok := m[tok]
			if ok != present || got != want {
				t.Fatalf("token %d = %+v (present %v); want %+v (present %v)", tok, got, ok, want, present)
			}
			if _, ok := m[999]; ok {
				t.Fatal("unknown token reported")
			}
		}
		check(0, 0, 1, store.BayesCount{}, false)
		learn(store.BayesLearnRequest{Key: "a", Spam: true, Tokens: []int64{1, 2, -3}}, true)
		learn(store.BayesLearnRequest{Key: "b", Spam: true, Tokens: []int64{1}}, true)
		check(2, 0, 1, store.BayesCount{Spam: 2}, true)
		learn(store.BayesLearnRequest{Key: "a", Spam: true, Tokens: []int64{1, 2, -3}}, false)
		check(2, 0, -3, store.BayesCount{Spam: 1}, true)
		learn(store.BayesLearnRequest{Key: "a", Spam: false, Tokens: []int64{1, 2, -3}}, true)
		check(1, 1, 1, store.BayesCount{Spam: 1, Ham: 1}, true)
		learn(store.BayesLearnRequest{Key: "a", Forget: true, Tokens: []int64{1, 2, -3}}, true)
		check(1, 0, -3, store.BayesCount{}, false)
		learn(store.BayesLearnRequest{Key: "a", Forget: true, Tokens: []int64{1, 2, -3}}, false)
		if _, err := s.BayesLearn(ctx, store.BayesLearnRequest{UserID: u.ID}); err == nil {
			t.Fatal("empty key accepted")
		}
		// Many tokens: more than one IN (...) chunk.
		many := make([]int64, 1234)
		for i := range many {
			many[i] = int64(i) << 40
		}
		learn(store.BayesLearnRequest{Key: "c", Tokens: many}, true)
		m, err := s.BayesTokens(ctx, u.ID, many)
		if err != nil || len(m) != len(many) {
			t.Fatalf("BayesTokens of %d: %d, %v", len(many), len(m), err)
		}
		// Removing the user removes the counts.
		if err := s.RemoveUser(ctx, u.Address); err != nil {
			t.Fatal(err)
		}
		if tot, _ := s.BayesTotals(ctx, u.ID); tot != (store.BayesCount{}) {
			t.Fatalf("totals after user removal: %+v", tot)
		}
		s.Close()
	}
}
