//go:build integration

package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// farMX is a scripted SMTP server standing in for the far side's MX. Its answer to each DATA is decided by the
// test: hold the transaction open until released, then answer with the reply it is given.
type farMX struct {
	mu       sync.Mutex // guards the fields below
	datas    int        // DATA commands seen (attempts that reached the message)
	accepted []string   // messages answered 250
	hold     bool       // the next DATA waits for release
	release  chan *smtp.SMTPError
	reached  chan struct{} // gets a value when a held DATA is waiting
}

func (f *farMX) NewSession(*smtp.Conn) (smtp.Session, error) { return &farSession{f: f}, nil }

type farSession struct{ f *farMX }

func (s *farSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *farSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *farSession) Reset()                               {}
func (s *farSession) Logout() error                        { return nil }

func (s *farSession) Data(r io.Reader) error {
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		return err
	}
	f := s.f
	f.mu.Lock()
	f.datas++
	hold := f.hold
	f.hold = false
	f.mu.Unlock()
	if hold {
		f.reached <- struct{}{}
		if e := <-f.release; e != nil {
			return e
		}
	}
	f.mu.Lock()
	f.accepted = append(f.accepted, b.String())
	f.mu.Unlock()
	return nil
}

func (f *farMX) counts() (datas, accepted int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.datas, len(f.accepted)
}

// startFarMX serves f on 127.0.0.2 (or 127.0.0.1 when that is not available) and returns its address.
func startFarMX(t *testing.T, f *farMX) string {
	t.Helper()
	f.release, f.reached = make(chan *smtp.SMTPError), make(chan struct{}, 1)
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
	}
	srv := smtp.NewServer(f)
	srv.Domain = "mx.far.test"
	srv.AllowInsecureAuth = true
	go srv.Serve(ln)
	t.Cleanup(func() {
		close(f.release) // a held DATA still waiting ends with 250
		srv.Close()
	})
	return ln.Addr().String()
}

// newQueueHost is a Postern for a.test whose mail to far.test goes to mx through the transport map.
func newQueueHost(t *testing.T, mx string) *labHost {
	t.Helper()
	extra := fmt.Sprintf("transport = { \"far.test\" = %q }", mx)
	// No DNS is needed: far.test goes through the transport map; the resolver points at a closed port.
	h := newLabHost(t, "127.0.0.1", "a.test", freePort(t), fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t)), extra)
	h.addUser("alice@a.test", "alice-secret-1")
	return h
}

// queueID returns the ID of the only entry of `postern queue list`.
func queueID(t *testing.T, h *labHost) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(h.run("queue", "list")), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Fatalf("queue list: %q", lines)
	}
	return strings.SplitN(lines[0], "\t", 2)[0]
}

// TestQueueFlushDuringAttempt: `postern queue flush` while the message is being sent is not undone by the
// attempt's backoff: the deferred message goes out again at once, not minutes later. `queue list` and `queue show`
// tell an admin what is happening meanwhile.
func TestQueueFlushDuringAttempt(t *testing.T) {
	mx := &farMX{hold: true}
	a := newQueueHost(t, startFarMX(t, mx))
	a.start()
	a.submit("alice@a.test", "alice-secret-1", []string{"bob@far.test"}, labMessage("alice@a.test", "bob@far.test", "Flushed", "q-1"))
	<-mx.reached // the first attempt is in DATA
	id := queueID(t, a)
	list := a.run("queue", "list")
	for _, want := range []string{id + "\t", "\t<alice@a.test>\t", "bob@far.test (queued)", "\tsending now\t"} {
		if !strings.Contains(list, want) {
			t.Errorf("queue list during the attempt lacks %q: %q", want, list)
		}
	}
	show := a.run("queue", "show", id)
	for _, want := range []string{"Queue-ID:     " + id, "Recipient:    bob@far.test (queued)", "Subject: Flushed", "Message-ID: <q-1@lab.test>"} {
		if !strings.Contains(show, want) {
			t.Errorf("queue show lacks %q:\n%s", want, show)
		}
	}
	a.run("queue", "flush")
	mx.release <- &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	// The backoff after a first failure is 2 minutes; the flush makes the next attempt come at once.
	waitUntil(t, "the flushed message is delivered", func() bool { _, ok := mx.counts(); return ok == 1 })
	waitUntil(t, "the queue is empty", func() bool { return strings.TrimSpace(a.run("queue", "list")) == "" })
	log := a.mailLog()
	for _, want := range []string{"deferred from=<alice@a.test> to=<bob@far.test>", `status="451 4.3.0 Try again later" detail="attempt 1"`,
		"delivered from=<alice@a.test> to=<bob@far.test>", `detail="attempt 2; `} {
		if !strings.Contains(log, want) {
			t.Errorf("mail log lacks %q:\n%s", want, log)
		}
	}
}

// TestQueueCrashMidDelivery: Postern killed (SIGKILL) while sending a message sends it again after the restart,
// within the short lease (2 minutes), once: the far side gets it exactly once complete.
func TestQueueCrashMidDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a lease to run out")
	}
	mx := &farMX{hold: true}
	a := newQueueHost(t, startFarMX(t, mx))
	a.start()
	a.submit("alice@a.test", "alice-secret-1", []string{"bob@far.test"}, labMessage("alice@a.test", "bob@far.test", "Crash", "q-2"))
	<-mx.reached
	crashed := time.Now()
	a.kill()
	mx.release <- &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "connection lost"}
	a.start()
	deadline := crashed.Add(2*time.Minute + 60*time.Second) // the lease, plus a poll and generous slack
	for {
		if _, ok := mx.counts(); ok > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered %v after the crash (lease 2m):\n%s", time.Since(crashed).Round(time.Second), a.mailLog())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("delivered %v after the crash", time.Since(crashed).Round(time.Second))
	waitUntil(t, "the queue is empty", func() bool { return strings.TrimSpace(a.run("queue", "list")) == "" })
	if datas, ok := mx.counts(); datas != 2 || ok != 1 {
		t.Errorf("far side saw %d DATA, accepted %d: want the aborted one and one more", datas, ok)
	}
}
