//go:build crash

package crash

import (
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/admin"

	_ "modernc.org/sqlite" // the test fast-forwards dead workers' queue leases in the database
)

const password = "crash-test-password"

// envInt reads a knob of the test: CRASH_MESSAGES, CRASH_KILLS, CRASH_SESSIONS, CRASH_SEED.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative number", name, v)
	}
	return n
}

// message is one message the load generator tried to send.
type message struct {
	id     string   // Message-ID, with its angle brackets
	local  []string // local recipients
	remote bool     // also to a remote.test recipient
}

// ledger records what the server acknowledged.
type ledger struct {
	mu       sync.Mutex // guards accepted
	accepted map[string]message
	tried    atomic.Int64 // messages whose transaction began
	failed   atomic.Int64 // transactions that ended without 250 (the connection died, or 4xx)
}

func (l *ledger) accept(m message) {
	l.mu.Lock()
	l.accepted[m.id] = m
	l.mu.Unlock()
}

// generator sends total messages over sessions concurrent SMTP sessions; a session whose connection fails dials
// again (the server is being killed) and goes on with a new message: a message without 250 is never retried, so
// any copy beyond the first is the server's duplicate, never the client's.
type generator struct {
	addr  string
	users []string
	total int64
	next  atomic.Int64
	seed  uint64
	l     *ledger
}

func (g *generator) compose(n int64, rng *rand.Rand) (message, string) {
	m := message{id: fmt.Sprintf("<crash-%d-%d@loadgen.test>", g.seed, n)}
	switch r := rng.IntN(100); {
	case r < 55: // one local recipient
		m.local = []string{g.users[rng.IntN(len(g.users))]}
	case r < 70: // two local recipients: one blob, two copies
		i := rng.IntN(len(g.users))
		m.local = []string{g.users[i], g.users[(i+1)%len(g.users)]}
	case r < 88: // remote only: the outbound queue
		m.remote = true
	default: // local and remote in one transaction
		m.local, m.remote = []string{g.users[rng.IntN(len(g.users))]}, true
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: loadgen@remote.test\r\nTo: crash@example.test\r\nSubject: crash %d\r\nMessage-ID: %s\r\n", n, m.id)
	fmt.Fprintf(&b, "Date: %s\r\n\r\n", time.Now().Format(time.RFC1123Z))
	for i := range 16 + rng.IntN(48) { // 1-4 KiB
		fmt.Fprintf(&b, "line %03d of message %d: the quick brown fox jumps over the lazy dog.\r\n", i, n)
	}
	return m, b.String()
}

// send runs one transaction; nil means the server answered 250 to the data.
func send(c *smtp.Client, m message, body string) error {
	if err := c.Mail("loadgen@remote.test", nil); err != nil {
		return err
	}
	rcpts := m.local
	if m.remote {
		rcpts = append(append([]string(nil), rcpts...), "someone@remote.test")
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func (g *generator) session(ctx context.Context, w int) {
	rng := rand.New(rand.NewPCG(g.seed, uint64(w)))
	var c *smtp.Client
	defer func() {
		if c != nil {
			c.Quit()
		}
	}()
	for ctx.Err() == nil {
		for c == nil {
			var err error
			if c, err = smtp.Dial(g.addr); err != nil {
				c = nil
				select {
				case <-ctx.Done():
					return
				case <-time.After(20 * time.Millisecond): // the server is restarting
				}
				continue
			}
			c.CommandTimeout, c.SubmissionTimeout = time.Minute, time.Minute
			if err := c.Hello("loadgen.test"); err != nil {
				c.Close()
				c = nil
			}
		}
		n := g.next.Add(1)
		if n > g.total {
			return
		}
		m, body := g.compose(n, rng)
		g.l.tried.Add(1)
		if err := send(c, m, body); err != nil {
			g.l.failed.Add(1)
			c.Close()
			c = nil
			continue
		}
		g.l.accept(m)
	}
}

// killer SIGKILLs and restarts the server kills times, each once the generator has passed a random point of its
// share of the run, after a random few milliseconds more (so kills land inside blob writes, commits, replies and
// queue deliveries alike).
func killer(t *testing.T, s *server, g *generator, kills int, rng *rand.Rand) []int64 {
	var at []int64
	span := g.total / int64(kills+1)
	for i := range kills {
		point := int64(i+1)*span + rng.Int64N(span/2+1) - span/4
		for g.next.Load() < point {
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		at = append(at, g.next.Load())
		s.kill()
		s.start()
	}
	return at
}

func TestCrash(t *testing.T) {
	total := envInt(t, "CRASH_MESSAGES", 4000)
	kills := envInt(t, "CRASH_KILLS", 6)
	sessions := envInt(t, "CRASH_SESSIONS", 8)
	seed := uint64(envInt(t, "CRASH_SEED", int(time.Now().UnixNano()%1e9)))
	t.Logf("CRASH_MESSAGES=%d CRASH_KILLS=%d CRASH_SESSIONS=%d CRASH_SEED=%d", total, kills, sessions, seed)

	k := newSink(t)
	s := newServer(t, binary(t), k.addr())
	users := []string{"u0@example.test", "u1@example.test", "u2@example.test", "u3@example.test"}
	for _, u := range users {
		s.cli(password+"\n", "user", "add", u, "--password-stdin")
	}
	s.cli("", "access", "add", "127.0.0.1", "RELAY") // the generator relays to remote.test without AUTH
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server output:\n%s", tail(s.output(), 200))
		}
	})

	l := &ledger{accepted: map[string]message{}}
	g := &generator{addr: s.addr(s.smtp), users: users, total: int64(total), seed: seed, l: l}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := range sessions {
		wg.Go(func() { g.session(ctx, w) })
	}
	killedAt := killer(t, s, g, kills, rand.New(rand.NewPCG(seed, 1<<32)))
	wg.Wait()
	t.Logf("load done: %d tried, %d got 250, %d failed; killed at messages %v", l.tried.Load(), len(l.accepted),
		l.failed.Load(), killedAt)

	leases := s.expireLeases()
	s.drainQueue()
	r := verify(t, s, k, l, users)
	r.kills, r.leases = kills, leases
	rep := s.checkStore()
	t.Logf("postern check --store: %v; %d orphan blob file(s)", rep.Counts, len(rep.Orphans))
	for _, p := range rep.Problems {
		t.Errorf("check --store: %s: %s", p.Check, p.Detail)
	}
	r.orphans = len(rep.Orphans)
	t.Log(r.String())
	if out := os.Getenv("CRASH_REPORT"); out != "" {
		if err := os.WriteFile(out, []byte(r.String()+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// expireLeases stops the server and ends the queue leases that killed processes held. A lease is how a worker
// owns an entry (15 minutes); one whose process died keeps the entry until it runs out. Rather than wait, the
// test moves those leases' end into the past, exactly what the passing of time would do. Returns how many there
// were.
func (s *server) expireLeases() int64 {
	s.t.Helper()
	s.stop()
	db, err := sql.Open("sqlite", filepath.Join(s.dir, "data", "postern.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE queue SET lease_until = 0 WHERE lease_until > 0`)
	if err != nil {
		s.t.Fatal(err)
	}
	n, _ := res.RowsAffected()
	s.t.Logf("%d queue lease(s) held by killed processes expired", n)
	s.start()
	return n
}

// drainQueue waits until the outbound queue is empty, flushing it now and then so backoff does not slow it.
func (s *server) drainQueue() {
	s.t.Helper()
	deadline := time.Now().Add(5 * time.Minute) // a bound on a hang, not a performance assertion
	for i := 0; ; i++ {
		out := strings.TrimSpace(s.cli("", "queue", "list"))
		if out == "" {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the outbound queue did not drain:\n%s", tail(out, 20))
		}
		if i%20 == 0 {
			s.cli("", "queue", "flush")
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (s *server) checkStore() admin.CheckReport {
	s.t.Helper()
	out, err := s.cliErr("", "check", "--store", "--json")
	var r admin.CheckReport
	if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
		s.t.Fatalf("postern check --store --json: %v / %v\n%s", err, jerr, out)
	}
	return r
}

// result holds the numbers of a run, for docs/durability.md.
type result struct {
	tried, accepted, failed         int64
	kills                           int
	leases                          int64
	localAccepted, localLost        int // (message, user) pairs acknowledged / missing
	localDuplicates                 int // copies beyond the first of any message in any mailbox
	localUnacked                    int // copies of messages that got no 250 (allowed)
	remoteAccepted, remoteLost      int
	remoteDuplicates, remoteUnacked int
	orphans                         int
}

func (r result) String() string {
	return fmt.Sprintf("crash run: %d messages tried, %d acknowledged with 250, %d without; %d SIGKILLs; "+
		"local: %d acknowledged copies, %d lost, %d duplicated, %d unacknowledged present; "+
		"remote: %d acknowledged, %d lost, %d delivered more than once, %d unacknowledged delivered; "+
		"%d queue leases of killed processes; %d orphan blob files",
		r.tried, r.accepted, r.failed, r.kills, r.localAccepted, r.localLost, r.localDuplicates, r.localUnacked,
		r.remoteAccepted, r.remoteLost, r.remoteDuplicates, r.remoteUnacked, r.leases, r.orphans)
}

// verify compares the ledger with the mailboxes (over IMAP) and the sink.
func verify(t *testing.T, s *server, k *sink, l *ledger, users []string) result {
	t.Helper()
	r := result{tried: l.tried.Load(), accepted: int64(len(l.accepted)), failed: l.failed.Load()}
	for _, u := range users {
		got := inbox(t, s, u)
		for id, n := range got {
			if n > 1 {
				r.localDuplicates += n - 1
				t.Errorf("%s: message %s is in INBOX %d times", u, id, n)
			}
		}
		for id, m := range l.accepted {
			for _, lu := range m.local {
				if lu != u {
					continue
				}
				r.localAccepted++
				if got[id] == 0 {
					r.localLost++
					t.Errorf("%s: message %s got 250 but is not in INBOX", u, id)
				}
			}
		}
		for id := range got {
			if m, ok := l.accepted[id]; !ok || !contains(m.local, u) {
				r.localUnacked++
			}
		}
	}
	delivered := k.counts()
	for id, m := range l.accepted {
		if !m.remote {
			continue
		}
		r.remoteAccepted++
		if delivered[id] == 0 {
			r.remoteLost++
			t.Errorf("message %s got 250 for remote.test but never reached it", id)
		}
	}
	for id, n := range delivered {
		if n > 1 {
			r.remoteDuplicates++
		}
		if m, ok := l.accepted[id]; !ok || !m.remote {
			r.remoteUnacked++
		}
	}
	return r
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// inbox counts each Message-ID in a user's INBOX, read over IMAPS with go-imap's client.
func inbox(t *testing.T, s *server, user string) map[string]int {
	t.Helper()
	c, err := imapclient.DialTLS(s.addr(s.imaps), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatalf("IMAPS: %v", err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("LOGIN %s: %v", user, err)
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("SELECT INBOX of %s: %v", user, err)
	}
	got := map[string]int{}
	if sel.NumMessages == 0 {
		return got
	}
	var all imap.SeqSet
	all.AddRange(1, 0)
	section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
	msgs, err := c.Fetch(all, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("FETCH of %s: %v", user, err)
	}
	if len(msgs) != int(sel.NumMessages) {
		t.Errorf("%s: FETCH 1:* returned %d messages, SELECT said %d", user, len(msgs), sel.NumMessages)
	}
	for _, m := range msgs {
		got[messageID(m.FindBodySection(section))]++
	}
	c.Logout().Wait()
	return got
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
