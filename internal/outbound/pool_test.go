package outbound

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/dns"
)

// TestReuse: messages to one destination share a connection (RSET between them) up to ReuseMax transactions;
// a connection the server dropped while idle is replaced without failing the message; Close ends idle ones.
func TestReuse(t *testing.T) {
	srvTLS, _ := selfSigned(t, "mx.remote.test")
	l := newLab()
	mta := startMTA(t, srvTLS, nil)
	l.dns.MX["remote.test"] = []dns.MX{{Host: "mx.remote.test", Pref: 10}}
	l.host("mx.remote.test", "192.0.2.1", mta)
	c := l.client(t, func(o *Options) { o.ReuseMax = 3 })
	ctx := context.Background()
	for i := range 4 {
		if res := c.Send(ctx, message("a@remote.test")); !res[0].Delivered() || !strings.HasPrefix(res[0].TLS, "tls=TLSv1.3 verified=none") {
			t.Fatalf("message %d: %+v", i, res[0])
		}
	}
	if n, got := l.dials(), len(mta.messages()); n != 2 || got != 4 {
		t.Fatalf("4 messages with ReuseMax 3 took %d connections (want 2), MTA got %d", n, got)
	}
	// A refused recipient and a refused message leave the connection usable.
	mta.mu.Lock()
	mta.rcptReply["unknown@remote.test"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
	mta.mu.Unlock()
	if res := c.Send(ctx, message("unknown@remote.test")); res[0].Code != 550 {
		t.Fatalf("unknown user: %+v", res[0])
	}
	if res := c.Send(ctx, message("b@remote.test")); !res[0].Delivered() || l.dials() != 2 {
		t.Fatalf("after a refused recipient: %+v, %d connections", res[0], l.dials())
	}
	// The idle connection dies: RSET fails, a new connection takes the message.
	l.cut()
	if res := c.Send(ctx, message("c@remote.test")); !res[0].Delivered() || l.dials() != 3 {
		t.Fatalf("after the connection died: %+v, %d connections", res[0], l.dials())
	}
	if c.pool.size() != 1 {
		t.Fatalf("%d idle connections, want 1", c.pool.size())
	}
	c.Close()
	if c.pool.size() != 0 {
		t.Fatal("Close left idle connections")
	}
	// After Close, Send still works with one connection per transaction.
	if res := c.Send(ctx, message("d@remote.test")); !res[0].Delivered() || l.dials() != 4 || c.pool.size() != 0 {
		t.Fatalf("after Close: %+v", res[0])
	}
}

// TestReuseOff: a negative ReuseIdle means one connection per message.
func TestReuseOff(t *testing.T) {
	l := newLab()
	mta := startMTA(t, nil, nil)
	l.dns.MX["remote.test"] = []dns.MX{{Host: "mx.remote.test", Pref: 10}}
	l.host("mx.remote.test", "192.0.2.1", mta)
	c := l.client(t, func(o *Options) { o.ReuseIdle = -1 })
	defer c.Close()
	for range 3 {
		if res := c.Send(context.Background(), message("a@remote.test")); !res[0].Delivered() {
			t.Fatalf("%+v", res[0])
		}
	}
	if l.dials() != 3 || c.pool.size() != 0 {
		t.Fatalf("%d connections for 3 messages without reuse", l.dials())
	}
}

// TestReuseKeepsRequirement: a connection opened under opportunistic TLS is not reused for a message whose
// destination requires verified TLS (here a different MTA-STS outcome for the same host).
func TestReuseKeepsRequirement(t *testing.T) {
	srvTLS, pool := selfSigned(t, "mx.remote.test")
	l := newLab()
	mta := startMTA(t, srvTLS, nil)
	l.dns.MX["remote.test"] = []dns.MX{{Host: "mx.remote.test", Pref: 10}}
	l.dns.MX["strict.test"] = []dns.MX{{Host: "mx.remote.test", Pref: 10}}
	l.host("mx.remote.test", "192.0.2.1", mta)
	c := l.client(t, func(o *Options) {
		o.TLSConfig = &tls.Config{RootCAs: pool}
		o.MTASTS = perDomain{"strict.test": {Mode: "enforce", MX: []string{"mx.remote.test"}}}
	})
	defer c.Close()
	ctx := context.Background()
	c.Send(ctx, message("a@remote.test"))
	res := c.Send(ctx, message("a@strict.test"))
	if !res[0].Delivered() || l.dials() != 2 {
		t.Fatalf("%+v after %d connections (want 2)", res[0], l.dials())
	}
	c.Send(ctx, message("b@strict.test"))
	if l.dials() != 2 {
		t.Fatalf("same requirement did not reuse: %d connections", l.dials())
	}
}

// BenchmarkSend compares one message per connection with connection reuse, over STARTTLS on loopback.
func BenchmarkSend(b *testing.B) {
	for _, bc := range []struct {
		name string
		idle time.Duration
	}{{"new-connection", -1}, {"reuse", 5 * time.Second}} {
		b.Run(bc.name, func(b *testing.B) {
			srvTLS, _ := selfSigned(b, "mx.remote.test")
			l := newLab()
			mta := startMTA(b, srvTLS, nil)
			l.dns.MX["remote.test"] = []dns.MX{{Host: "mx.remote.test", Pref: 10}}
			l.host("mx.remote.test", "192.0.2.1", mta)
			c, err := New(Options{Hostname: "mail.local.test", Resolver: l.dns, Dial: l.dial, ReuseIdle: bc.idle})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			for b.Loop() {
				if res := c.Send(context.Background(), message("a@remote.test")); !res[0].Delivered() {
					b.Fatal(res[0])
				}
			}
			b.ReportMetric(float64(l.dials())/float64(b.N), "conns/op")
		})
	}
}
