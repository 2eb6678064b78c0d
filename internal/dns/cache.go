package dns

import (
	"container/list"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// Cache limits. Positive answers live for the smallest TTL of their answer section, negative ones for the SOA's
// negative TTL (RFC 2308 5); both are capped so that a mistaken long TTL does not pin a stale answer for a day.
const (
	// DefaultCacheSize is the entry count config dns.cache_size defaults to.
	DefaultCacheSize = 10000
	maxPositiveTTL   = time.Hour
	// RFC 2308 5 suggests a one to three hour cap on negative answers; mail wants a new DKIM key, a freshly
	// published SPF record or a new domain's MX to be seen sooner, so 15 minutes.
	maxNegativeTTL = 15 * time.Minute
	// maxCachedSize bounds the wire size of a response worth caching, so that 10,000 entries stay a few
	// megabytes even when senders publish huge TXT records. Bigger answers are still returned, just not kept.
	maxCachedSize = 8 << 10
)

// cacheKey names one question. The client asks every question the same way (RD and AD set, CD clear, EDNS0 without
// DO), so the name and type identify the answer; a query with other flags would need them in the key.
type cacheKey struct {
	name  string // fqdn: lower-case, one trailing dot
	qtype uint16
}

// answer is what query returns for one question. It is shared by every reader of the cache, so nobody may modify
// rrs or its records.
type answer struct {
	rrs []mdns.RR // the records of the asked type; nil for a failure
	res Result    // the AD bit of the response the records came from (never mixed with another response's)
	err error     // nil, ErrNotFound or ErrNoData wrapped, or a *TempError (never cached)
}

type cacheEntry struct {
	key     cacheKey
	ans     answer
	expires time.Time
}

// flight is one exchange in progress; the callers asking the same question meanwhile wait for it (coalescing, as
// x/sync/singleflight does).
type flight struct {
	done    chan struct{} // closed when ans is set
	ans     answer
	waiters int // followers that joined (the tests wait on it)
	// abandoned: the leader's context ended during the exchange, so its failure says nothing about the question;
	// a follower whose context is still alive asks again.
	abandoned bool
}

// cache is a bounded LRU of answers plus the flights in progress.
type cache struct {
	max int              // entries; 0: answers are not kept (flights still coalesce)
	now func() time.Time // time.Now; the tests move it

	mu      sync.Mutex // guards lru, items and flights
	lru     *list.List // of *cacheEntry, most recently used first
	items   map[cacheKey]*list.Element
	flights map[cacheKey]*flight
}

func newCache(max int) *cache {
	return &cache{max: max, now: time.Now, lru: list.New(), items: map[cacheKey]*list.Element{},
		flights: map[cacheKey]*flight{}}
}

// begin returns the cached answer for k (hit), or the flight to wait for (leader false), or a new flight that the
// caller must run and end with finish (leader true). Checking the cache and the flights under one lock means a
// flight that ends between the two checks cannot cause a second exchange.
func (c *cache) begin(k cacheKey) (ans answer, hit bool, f *flight, leader bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		e := el.Value.(*cacheEntry)
		if c.now().Before(e.expires) {
			c.lru.MoveToFront(el)
			return e.ans, true, nil, false
		}
		c.lru.Remove(el)
		delete(c.items, k)
	}
	if f, ok := c.flights[k]; ok {
		f.waiters++
		return answer{}, false, f, false
	}
	f = &flight{done: make(chan struct{})}
	c.flights[k] = f
	return answer{}, false, f, true
}

// finish ends f with ans, keeps ans for ttl (0: not kept) and wakes the followers.
func (c *cache) finish(k cacheKey, f *flight, ans answer, ttl time.Duration, abandoned bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.flights, k)
	f.ans, f.abandoned = ans, abandoned
	close(f.done)
	if ttl <= 0 || c.max <= 0 {
		return
	}
	e := &cacheEntry{key: k, ans: ans, expires: c.now().Add(ttl)}
	if el, ok := c.items[k]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.items[k] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).key)
	}
}

// len returns the number of entries kept, expired or not.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// cacheTTL says how long the response r to a question of type qtype may be kept: the smallest TTL in its answer
// section (a CNAME chain included: the answer is kept under the asked name, so it must expire with the first link
// that does); for NXDOMAIN and NODATA also no longer than the SOA's negative TTL, min(SOA TTL, SOA MINIMUM)
// (RFC 2308 5), and not at all without an SOA (RFC 2308 5: "Negative responses without SOA records SHOULD NOT be
// cached"). Failures (SERVFAIL, REFUSED, timeouts) are not kept: RFC 2308 7.1 allows up to five minutes, but a
// resolver that failed once often answers the retry, and the queue and the SMTP client retry on their own.
func cacheTTL(r *mdns.Msg, negative bool) time.Duration {
	if r.Truncated || r.Len() > maxCachedSize {
		return 0
	}
	limit := maxPositiveTTL
	if negative {
		limit = maxNegativeTTL
	}
	ttl := uint32(limit / time.Second)
	for _, rr := range r.Answer {
		ttl = min(ttl, rr.Header().Ttl)
	}
	if negative {
		var soa *mdns.SOA
		for _, rr := range r.Ns {
			if s, ok := rr.(*mdns.SOA); ok {
				soa = s
				break
			}
		}
		if soa == nil {
			return 0
		}
		ttl = min(ttl, soa.Hdr.Ttl, soa.Minttl)
	}
	return time.Duration(ttl) * time.Second
}
