package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/postern/postern/internal/store"
)

// RunBayes runs the conformance tests of store.BayesStore (optional: a backend that has the statistical filter's
// tables calls it besides Run). The store open returns must implement store.BayesStore.
func RunBayes(t *testing.T, open Opener) {
	for _, tt := range []namedTest{
		{"Learn", testBayesLearn},
		{"Concurrent", testBayesConcurrent},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

func bayesStore(t *testing.T, open Opener) (store.BayesStore, store.Store, store.User) {
	t.Helper()
	s, _ := openT(t, open)
	bs, ok := s.(store.BayesStore)
	if !ok {
		t.Fatalf("%T does not implement store.BayesStore", s)
	}
	must(t, s.AddDomain(context.Background(), "example.org"))
	return bs, s, addUser(t, s, "u@example.org", 0)
}

// testBayesLearn trains, re-trains in the same class (no change), moves to the other class and forgets one
// message, checking the totals and token counts after each step; removing the user removes the counts.
func testBayesLearn(t *testing.T, open Opener) {
	ctx := context.Background()
	bs, s, u := bayesStore(t, open)
	learn := func(req store.BayesLearnRequest, wantChanged bool) {
		t.Helper()
		req.UserID = u.ID
		changed, err := bs.BayesLearn(ctx, req)
		if err != nil || changed != wantChanged {
			t.Fatalf("BayesLearn(%+v) = %v, %v; want %v", req, changed, err, wantChanged)
		}
	}
	check := func(spam, ham int64, tok int64, want store.BayesCount, present bool) {
		t.Helper()
		tot, err := bs.BayesTotals(ctx, u.ID)
		if err != nil || tot != (store.BayesCount{Spam: spam, Ham: ham}) {
			t.Fatalf("totals = %+v, %v; want %d spam, %d ham", tot, err, spam, ham)
		}
		m, err := bs.BayesTokens(ctx, u.ID, []int64{tok, 999})
		must(t, err)
		if got, ok := m[tok]; ok != present || got != want {
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
	if _, err := bs.BayesLearn(ctx, store.BayesLearnRequest{UserID: u.ID}); err == nil {
		t.Fatal("empty key accepted")
	}
	many := make([]int64, 1234) // more than one query's worth of variables in SQL backends
	for i := range many {
		many[i] = int64(i) << 40
	}
	learn(store.BayesLearnRequest{Key: "c", Tokens: many}, true)
	if m, err := bs.BayesTokens(ctx, u.ID, many); err != nil || len(m) != len(many) {
		t.Fatalf("BayesTokens of %d: %d, %v", len(many), len(m), err)
	}
	must(t, s.RemoveUser(ctx, u.Address))
	if tot, _ := bs.BayesTotals(ctx, u.ID); tot != (store.BayesCount{}) {
		t.Fatalf("totals after user removal: %+v", tot)
	}
}

// testBayesConcurrent learns distinct messages from many goroutines: no count is lost.
func testBayesConcurrent(t *testing.T, open Opener) {
	ctx := context.Background()
	bs, _, u := bayesStore(t, open)
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := bs.BayesLearn(ctx, store.BayesLearnRequest{UserID: u.ID, Key: fmt.Sprint(i), Spam: i%2 == 0,
				Tokens: []int64{7, int64(i + 100)}})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	tot, err := bs.BayesTotals(ctx, u.ID)
	must(t, err)
	m, err := bs.BayesTokens(ctx, u.ID, []int64{7})
	must(t, err)
	if tot != (store.BayesCount{Spam: n / 2, Ham: n / 2}) || m[7] != tot {
		t.Fatalf("totals %+v, shared token %+v; want %d of each", tot, m[7], n/2)
	}
}
