package outbound

import (
	"sync"
	"time"
)

// pool keeps SMTP sessions open for a short while after a transaction so that the next message to the same
// destination (same host, address, port and TLS requirement) skips the connect, greeting, EHLO and TLS handshake,
// as Postfix's connection cache does. A session is handed to one transaction at a time.
type pool struct {
	idle time.Duration // how long an unused session stays open; <= 0: no reuse
	max  int           // transactions per session before it is closed

	mu     sync.Mutex // guards free and closed
	free   map[string][]*pooled
	closed bool
	wg     sync.WaitGroup // idle timers that fired and are closing their session
}

type pooled struct {
	s     *session
	timer *time.Timer
}

func newPool(idle time.Duration, max int) *pool {
	return &pool{idle: idle, max: max, free: map[string][]*pooled{}}
}

// get takes the most recently used idle session for key, or returns nil.
func (p *pool) get(key string) *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	for list := p.free[key]; len(list) > 0; list = p.free[key] {
		e := list[len(list)-1]
		p.free[key] = list[:len(list)-1]
		if len(p.free[key]) == 0 {
			delete(p.free, key)
		}
		if e.timer.Stop() {
			p.wg.Done() // its timer will not run
			return e.s
		}
		// The timer fired: its goroutine is closing the session.
	}
	return nil
}

// put keeps s for the next transaction to key, or says QUIT when reuse is off, the pool is closed or s has
// carried its share of transactions.
func (p *pool) put(key string, s *session) {
	if !p.keep(key, s) {
		s.quit()
	}
}

func (p *pool) keep(key string, s *session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.idle <= 0 || s.uses >= p.max {
		return false
	}
	e := &pooled{s: s}
	p.wg.Add(1)
	e.timer = time.AfterFunc(p.idle, func() {
		defer p.wg.Done()
		p.remove(key, e)
		s.quit()
	})
	p.free[key] = append(p.free[key], e)
	return true
}

// remove drops e from the idle list of key.
func (p *pool) remove(key string, e *pooled) {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.free[key]
	for i, x := range list {
		if x == e {
			p.free[key] = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(p.free[key]) == 0 {
		delete(p.free, key)
	}
}

// close says QUIT on every idle session and makes later put calls close theirs.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	var idle []*session
	for _, list := range p.free {
		for _, e := range list {
			if e.timer.Stop() {
				p.wg.Done()
				idle = append(idle, e.s)
			}
		}
	}
	p.free = map[string][]*pooled{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range idle {
		wg.Go(s.quit)
	}
	wg.Wait()
	p.wg.Wait()
}

// size returns the number of idle sessions (for tests).
func (p *pool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, list := range p.free {
		n += len(list)
	}
	return n
}
