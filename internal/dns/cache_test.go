package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// reply is what the counting server answers to one "name. TYPE" question.
type reply struct {
	rcode  int      // mdns.RcodeSuccess unless set
	answer []string // zone-file lines
	ns     []string // authority section (the SOA of a negative answer)
	ad     bool
}

// countingServer is a loopback DNS server that counts the questions it gets; a question listed in hold waits until
// the test closes its channel. Questions it has no reply for get NXDOMAIN without SOA.
type countingServer struct {
	addr    string
	replies map[string]reply
	hold    map[string]chan struct{}
	arrived chan string // each held question, when it arrives

	mu    sync.Mutex
	count map[string]int
}

func startCounting(t *testing.T, replies map[string]reply, hold map[string]chan struct{}) *countingServer {
	t.Helper()
	s := &countingServer{replies: replies, hold: hold, arrived: make(chan string, 100), count: map[string]int{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(s.serve)}
	go srv.ActivateAndServe()
	t.Cleanup(func() {
		for _, ch := range hold {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
		srv.Shutdown()
	})
	s.addr = pc.LocalAddr().String()
	return s
}

func (s *countingServer) serve(w mdns.ResponseWriter, r *mdns.Msg) {
	q := r.Question[0]
	key := q.Name + " " + mdns.TypeToString[q.Qtype]
	s.mu.Lock()
	s.count[key]++
	s.mu.Unlock()
	if ch, ok := s.hold[key]; ok {
		s.arrived <- key
		<-ch
	}
	m := new(mdns.Msg)
	m.SetReply(r)
	rep, ok := s.replies[key]
	if !ok {
		m.Rcode = mdns.RcodeNameError
	}
	m.Rcode = max(m.Rcode, rep.rcode)
	m.AuthenticatedData = rep.ad
	for _, line := range rep.answer {
		m.Answer = append(m.Answer, mustRR(line))
	}
	for _, line := range rep.ns {
		m.Ns = append(m.Ns, mustRR(line))
	}
	w.WriteMsg(m)
}

func mustRR(s string) mdns.RR {
	rr, err := mdns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return rr
}

func (s *countingServer) n(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count[key]
}

// clock is a test time source for the cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func cachingClient(t *testing.T, s *countingServer, size int) (*Client, *clock) {
	t.Helper()
	c, err := NewClient(ClientOptions{Server: s.addr, CacheSize: size})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c.cache.now = clk.now
	return c, clk
}

const soa = "test. %d IN SOA ns.test. admin.test. 1 3600 600 86400 %d"

// TestCacheTTL: each kind of answer is kept for as long as RFC 2308 and the caps say, then asked again.
func TestCacheTTL(t *testing.T) {
	t.Parallel()
	s := startCounting(t, map[string]reply{
		"ttl.test. MX": {answer: []string{"ttl.test. 300 IN MX 10 mx.ttl.test.", "ttl.test. 100 IN MX 20 mx2.ttl.test."}},
		// The chain expires with its shortest link, here the CNAME.
		"alias.test. A":  {answer: []string{"alias.test. 30 IN CNAME real.test.", "real.test. 600 IN A 192.0.2.1"}},
		"long.test. TXT": {answer: []string{`long.test. 86400 IN TXT "v=spf1 -all"`}},
		"zero.test. TXT": {answer: []string{`zero.test. 0 IN TXT "v=spf1 -all"`}},
		// NXDOMAIN: min(SOA TTL 600, MINIMUM 60) = 60s.
		"gone.test. MX": {rcode: mdns.RcodeNameError, ns: []string{fmt.Sprintf(soa, 600, 60)}},
		// NODATA: min(SOA TTL 45, MINIMUM 3600) = 45s.
		"nodata.test. MX": {answer: nil, ns: []string{fmt.Sprintf(soa, 45, 3600)}},
		// A negative TTL of a day is capped at 15 minutes.
		"longneg.test. TXT": {rcode: mdns.RcodeNameError, ns: []string{fmt.Sprintf(soa, 86400, 86400)}},
		"broken.test. MX":   {rcode: mdns.RcodeServerFailure},
	}, nil)
	// "nosoa.test. MX" has no reply: NXDOMAIN without SOA, never kept.
	c, _ := cachingClient(t, s, 100)
	ctx := context.Background()
	lookup := map[string]func() error{
		"ttl.test. MX":      func() error { _, _, err := c.LookupMX(ctx, "ttl.test"); return err },
		"alias.test. A":     func() error { _, _, err := c.query(ctx, "alias.test", mdns.TypeA); return err },
		"long.test. TXT":    func() error { _, _, err := c.LookupTXT(ctx, "long.test"); return err },
		"zero.test. TXT":    func() error { _, _, err := c.LookupTXT(ctx, "zero.test"); return err },
		"gone.test. MX":     func() error { _, _, err := c.LookupMX(ctx, "gone.test"); return err },
		"nodata.test. MX":   func() error { _, _, err := c.LookupMX(ctx, "nodata.test"); return err },
		"longneg.test. TXT": func() error { _, _, err := c.LookupTXT(ctx, "longneg.test"); return err },
		"broken.test. MX":   func() error { _, _, err := c.LookupMX(ctx, "broken.test"); return err },
		"nosoa.test. MX":    func() error { _, _, err := c.LookupMX(ctx, "nosoa.test"); return err },
	}
	// kept: how long each answer lives (0: not cached).
	kept := map[string]time.Duration{
		"ttl.test. MX": 100 * time.Second, "alias.test. A": 30 * time.Second, "long.test. TXT": time.Hour,
		"zero.test. TXT": 0, "gone.test. MX": 60 * time.Second, "nodata.test. MX": 45 * time.Second,
		"longneg.test. TXT": 15 * time.Minute, "broken.test. MX": 0, "nosoa.test. MX": 0,
	}
	wantErr := map[string]func(error) bool{
		"gone.test. MX":     func(err error) bool { return errors.Is(err, ErrNotFound) },
		"nosoa.test. MX":    func(err error) bool { return errors.Is(err, ErrNotFound) },
		"longneg.test. TXT": func(err error) bool { return errors.Is(err, ErrNotFound) },
		"nodata.test. MX":   func(err error) bool { return errors.Is(err, ErrNoData) },
		"broken.test. MX":   IsTemporary,
	}
	check := func(key string, want int) {
		t.Helper()
		err := lookup[key]()
		if is, ok := wantErr[key]; ok && !is(err) || !ok && err != nil {
			t.Errorf("%s: error %v", key, err)
		}
		if got := s.n(key); got != want {
			t.Errorf("%s: %d exchanges, want %d", key, got, want)
		}
	}
	for key, ttl := range kept {
		check(key, 1)
		want := 1
		if ttl == 0 {
			want = 2
		}
		check(key, want) // again at once: from the cache when kept
	}
	for key, ttl := range kept {
		if ttl == 0 {
			continue
		}
		t.Run(key, func(t *testing.T) {
			// Each answer lives exactly its TTL: one second before, still cached; at the TTL, asked again.
			c2, clk2 := cachingClient(t, s, 100)
			before := s.n(key)
			if err := callOn(c2, key); err != nil && wantErr[key] == nil {
				t.Fatal(err)
			}
			clk2.add(ttl - time.Second)
			callOn(c2, key)
			if got := s.n(key) - before; got != 1 {
				t.Errorf("%d exchanges within the TTL, want 1", got)
			}
			clk2.add(time.Second)
			callOn(c2, key)
			if got := s.n(key) - before; got != 2 {
				t.Errorf("%d exchanges after the TTL, want 2", got)
			}
		})
	}
}

// callOn asks c the question "name. TYPE".
func callOn(c *Client, key string) error {
	var name, typ string
	fmt.Sscan(key, &name, &typ)
	_, _, err := c.query(context.Background(), name, mdns.StringToType[typ])
	return err
}

// TestCacheAuthentic: the AD bit is kept with the answer, and names differing only in case share one entry.
func TestCacheAuthentic(t *testing.T) {
	t.Parallel()
	s := startCounting(t, map[string]reply{
		"secure.test. TLSA": {ad: true, answer: []string{"secure.test. 60 IN TLSA 3 1 1 " +
			"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
		"_25._tcp.secure.test. TLSA": {ad: true, answer: []string{"_25._tcp.secure.test. 60 IN TLSA 3 1 1 " +
			"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
		"plain.test. MX":        {answer: []string{"plain.test. 60 IN MX 10 mx.plain.test."}},
		"gone-secure.test. TXT": {ad: true, rcode: mdns.RcodeNameError, ns: []string{fmt.Sprintf(soa, 60, 60)}},
	}, nil)
	c, _ := cachingClient(t, s, 100)
	ctx := context.Background()
	for i := range 3 {
		tl, res, err := c.LookupTLSA(ctx, 25, []string{"secure.test", "SECURE.test.", "Secure.Test"}[i])
		if err != nil || len(tl) != 1 || !res.Authentic {
			t.Fatalf("TLSA #%d = %v, %+v, %v", i, tl, res, err)
		}
		mx, res, err := c.LookupMX(ctx, "plain.test")
		if err != nil || len(mx) != 1 || res.Authentic {
			t.Fatalf("MX #%d = %v, %+v, %v", i, mx, res, err)
		}
		if _, res, err := c.LookupTXT(ctx, "gone-secure.test"); !errors.Is(err, ErrNotFound) || !res.Authentic {
			t.Fatalf("authentic NXDOMAIN #%d = %+v, %v", i, res, err)
		}
	}
	for key, want := range map[string]int{"_25._tcp.secure.test. TLSA": 1, "plain.test. MX": 1, "gone-secure.test. TXT": 1} {
		if got := s.n(key); got != want {
			t.Errorf("%s: %d exchanges, want %d", key, got, want)
		}
	}
}

// TestCacheSize: the cache keeps at most CacheSize answers, dropping the least recently used; 0 keeps none.
func TestCacheSize(t *testing.T) {
	t.Parallel()
	replies := map[string]reply{}
	for i := range 5 {
		name := fmt.Sprintf("n%d.test.", i)
		replies[name+" TXT"] = reply{answer: []string{name + ` 300 IN TXT "x"`}}
	}
	s := startCounting(t, replies, nil)
	c, _ := cachingClient(t, s, 3)
	ctx := context.Background()
	ask := func(i int) {
		t.Helper()
		if _, _, err := c.LookupTXT(ctx, fmt.Sprintf("n%d.test", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{0, 1, 2, 0, 3, 4} { // 0 is used again before 3 and 4 arrive: 1 and 2 go
		ask(i)
	}
	if n := c.cache.len(); n != 3 {
		t.Errorf("%d entries, want 3", n)
	}
	for _, i := range []int{0, 3, 4, 1} {
		ask(i)
	}
	for i, want := range []int{1, 2, 1, 1, 1} {
		if got := s.n(fmt.Sprintf("n%d.test. TXT", i)); got != want {
			t.Errorf("n%d: %d exchanges, want %d", i, got, want)
		}
	}

	off, _ := cachingClient(t, s, 0)
	for range 2 {
		if _, _, err := off.LookupTXT(ctx, "n4.test"); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.n("n4.test. TXT"); got != 3 {
		t.Errorf("cache off: %d exchanges of n4, want 3", got)
	}
	if _, err := NewClient(ClientOptions{Server: s.addr, CacheSize: -1}); err == nil {
		t.Error("negative cache size accepted")
	}
}

// waitWaiters waits until n callers wait on the flight for key; a second exchange reaching s meanwhile fails the
// test (the callers were not coalesced).
func waitWaiters(t *testing.T, s *countingServer, c *Client, key cacheKey, n int) {
	t.Helper()
	for {
		c.cache.mu.Lock()
		f := c.cache.flights[key]
		got := 0
		if f != nil {
			got = f.waiters
		}
		c.cache.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case q := <-s.arrived:
			t.Fatalf("another exchange for %s while %d callers wait", q, got)
		default:
		}
		runtime.Gosched()
	}
}

// TestCoalesce: concurrent identical questions share one exchange, whatever its outcome, and uncached failures
// are shared too but not kept.
func TestCoalesce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, key string
		ok        bool
		after     int // exchanges after a later, sequential lookup
	}{
		{"answer", "busy.test. MX", true, 1},
		{"servfail", "down.test. MX", false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gate := make(chan struct{})
			s := startCounting(t, map[string]reply{
				"busy.test. MX": {answer: []string{"busy.test. 60 IN MX 10 mx.busy.test."}},
				"down.test. MX": {rcode: mdns.RcodeServerFailure},
			}, map[string]chan struct{}{tc.key: gate})
			c, _ := cachingClient(t, s, 100)
			var name string
			fmt.Sscan(tc.key, &name)
			const n = 50
			errs := make(chan error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					mx, _, err := c.LookupMX(context.Background(), name)
					if err == nil && len(mx) != 1 {
						err = fmt.Errorf("caller %d: %v", i, mx)
					}
					errs <- err
				})
			}
			<-s.arrived
			waitWaiters(t, s, c, cacheKey{name, mdns.TypeMX}, n-1)
			close(gate)
			wg.Wait()
			close(errs)
			for err := range errs {
				if (err == nil) != tc.ok {
					t.Errorf("error %v, want ok=%v", err, tc.ok)
				}
			}
			if got := s.n(tc.key); got != 1 {
				t.Errorf("%d concurrent lookups made %d exchanges, want 1", n, got)
			}
			c.LookupMX(context.Background(), name)
			if got := s.n(tc.key); got != tc.after {
				t.Errorf("then one more lookup: %d exchanges, want %d", got, tc.after)
			}
		})
	}
}

// TestCoalesceLeaderGone: when the caller whose exchange others wait for gives up, it gets its context's error at
// once and the others ask again rather than inherit that failure; a waiter that gives up leaves the others alone.
func TestCoalesceLeaderGone(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	s := startCounting(t, map[string]reply{
		"slow.test. TXT": {answer: []string{`slow.test. 60 IN TXT "ok"`}},
	}, map[string]chan struct{}{"slow.test. TXT": gate})
	c, _ := cachingClient(t, s, 100)
	key := cacheKey{"slow.test.", mdns.TypeTXT}

	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() { _, _, err := c.LookupTXT(leaderCtx, "slow.test"); leaderErr <- err }()
	<-s.arrived

	quitterCtx, cancelQuitter := context.WithCancel(context.Background())
	quitterErr := make(chan error, 1)
	go func() { _, _, err := c.LookupTXT(quitterCtx, "slow.test"); quitterErr <- err }()
	waitWaiters(t, s, c, key, 1)
	cancelQuitter()
	if err := <-quitterErr; !IsTemporary(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter that gave up: %v", err)
	}

	follower := make(chan error, 1)
	go func() {
		txt, _, err := c.LookupTXT(context.Background(), "slow.test")
		if err == nil && (len(txt) != 1 || txt[0] != "ok") {
			err = fmt.Errorf("TXT %q", txt)
		}
		follower <- err
	}()
	waitWaiters(t, s, c, key, 2)
	cancelLeader()
	if err := <-leaderErr; !IsTemporary(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: %v", err)
	}
	select {
	case <-s.arrived: // the follower asked again
	case err := <-follower:
		t.Fatalf("follower did not ask again: %v", err)
	}
	close(gate)
	if err := <-follower; err != nil {
		t.Fatalf("follower: %v", err)
	}
	if got := s.n("slow.test. TXT"); got != 2 {
		t.Errorf("%d exchanges, want 2", got)
	}
}

// BenchmarkCachedLookup measures a lookup answered from the cache (the TXT lookups of SPF, DKIM and DMARC for a
// sender seen before).
func BenchmarkCachedLookup(b *testing.B) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, mustRR(`example.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`))
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	defer srv.Shutdown()
	ctx := context.Background()
	for _, size := range []int{DefaultCacheSize, 0} {
		c, err := NewClient(ClientOptions{Server: pc.LocalAddr().String(), CacheSize: size})
		if err != nil {
			b.Fatal(err)
		}
		name := "cached"
		if size == 0 {
			name = "uncached"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := c.LookupTXT(ctx, "example.test"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"-parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := c.LookupTXT(ctx, "Example.Test."); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// TestRetransmit: a query lost on the way is sent again before the timeout ends, and the answer arrives.
func TestRetransmit(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := 0
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		mu.Lock()
		seen++
		first := seen == 1
		mu.Unlock()
		if first {
			return // lost
		}
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, mustRR(`lossy.test. 60 IN TXT "ok"`))
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	// The whole lookup has 2s; the first try only 400ms.
	c, err := NewClient(ClientOptions{Server: pc.LocalAddr().String(), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	txt, _, err := c.LookupTXT(context.Background(), "lossy.test")
	if err != nil || len(txt) != 1 || txt[0] != "ok" {
		t.Fatalf("TXT = %q, %v", txt, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen != 2 {
		t.Errorf("server saw %d queries, want 2", seen)
	}
}
