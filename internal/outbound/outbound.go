// Package outbound delivers queued mail to other servers over SMTP: it routes each recipient domain (relay host,
// transport map, or MX lookup with the A/AAAA fallback and null MX of RFC 5321 5.1 and RFC 7505), tries the hosts
// in preference order, uses STARTTLS whenever offered (RFC 3207; opportunistic per RFC 7435) and requires it
// with an authenticated certificate where DANE (RFC 7672), MTA-STS (RFC 8461) or REQUIRETLS (RFC 8689) says so,
// sends one transaction per destination with every recipient of it, signs with DKIM, and reports one Result per
// recipient. Between calls it keeps only idle connections for reuse and the MTA-STS policies it fetched:
// retries, expiry and bounces belong to the queue.
package outbound

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/postern/postern/internal/dns"
)

// Signer adds DKIM signatures (implemented by *dkim.Signer): it reads the whole message and returns the header
// fields to put in front of it ("" for none).
type Signer interface {
	Sign(ctx context.Context, r io.Reader) (string, error)
}

// Relay is a smarthost that takes all outgoing mail (Postfix's relayhost).
type Relay struct {
	Addr        string // "host:port"
	Username    string // AUTH PLAIN identity; "" for no AUTH
	Password    string
	ImplicitTLS bool // TLS from the first byte (port 465) instead of STARTTLS
}

// Options configure a Client.
type Options struct {
	Hostname string // our EHLO name; also how we recognise ourselves in an MX list
	Resolver dns.Resolver
	Port     int // port of MX hosts (config delivery.remote_port); default 25
	// Relay, when set, takes every message; AUTH happens only over TLS.
	Relay *Relay
	// Transports maps a recipient domain to "host:port" (or "host", meaning Port) that takes its mail instead of
	// its MX hosts, as in Postfix's transport map.
	Transports map[string]string
	Signer     Signer
	// TLSConfig is the base client TLS config; its RootCAs (nil: the system's) verify the relay host, MX hosts
	// under an MTA-STS policy and hosts taking REQUIRETLS mail.
	TLSConfig *tls.Config
	// MTASTS finds recipient domains' MTA-STS policies (an *mtasts.Cache); nil: MTA-STS is not used.
	MTASTS PolicySource
	// DisableDANE skips TLSA lookups: no DANE (RFC 7672) even for hosts that publish secure TLSA records.
	DisableDANE bool
	// ReuseIdle is how long a connection stays open after a transaction for the next message to the same host
	// (default 5s; negative: one connection per transaction); ReuseMax caps the transactions one connection
	// carries (default 100).
	ReuseIdle time.Duration
	ReuseMax  int
	// Dial opens connections; default net.Dialer.
	Dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	ConnectTimeout time.Duration // default 30s
	CommandTimeout time.Duration // default 5m (RFC 5321 4.5.3.2)
	Logger         *slog.Logger
}

// Message is one queued message to deliver.
type Message struct {
	ID         string
	From       string // envelope sender; "" for the null reverse-path
	Recipients []Recipient
	// Open returns the message bytes; it is called once for signing and once per transaction.
	Open       func(ctx context.Context) (io.ReadCloser, error)
	Size       int64
	Ret        string // DSN RET: FULL or HDRS
	EnvID      string // DSN ENVID
	RequireTLS bool   // RFC 8689 REQUIRETLS
	// TLSOptional is the sender's "TLS-Required: No" (RFC 8689 4.2.2): MTA-STS and DANE failures do not stop
	// delivery, which falls back to opportunistic TLS. Send sets it from the header (ignored with REQUIRETLS).
	TLSOptional bool
}

// Recipient is one recipient with its DSN parameters (RFC 3461).
type Recipient struct {
	Address string
	Notify  []string
	ORcpt   string // "rfc822;xtext-address" as received
}

// Result is the outcome for one recipient.
type Result struct {
	Recipient string
	Code      int    // SMTP reply code; 4xx/5xx codes are made up for failures no server answered (DNS, network)
	Enhanced  string // RFC 3463 status, e.g. "5.1.1"
	Text      string // the server's text, or what went wrong
	Remote    string // "host[ip]" that answered; "" when none did
	DSN       bool   // the remote took the DSN parameters, so it reports success itself (RFC 3461 5.2.2)
	// TLS is the TLS used, as the mail log shows it ("tls=TLSv1.3 verified=dane", "tls=TLSv1.2 verified=pkix
	// policy=mta-sts"); "" for none.
	TLS string
}

// Delivered reports a 2xx answer to the final dot.
func (r Result) Delivered() bool { return r.Code/100 == 2 }

// Permanent reports a 5xx failure: the recipient is bounced, never retried.
func (r Result) Permanent() bool { return r.Code/100 == 5 }

// Status is the reply as one line, "550 5.1.1 text".
func (r Result) Status() string {
	s := fmt.Sprintf("%d %s", r.Code, r.Enhanced)
	if r.Text != "" {
		s += " " + r.Text
	}
	return s
}

// Client sends messages. It is safe for concurrent use.
type Client struct {
	opts Options
	log  *slog.Logger
	pool *pool
	mu   sync.Mutex // guards rnd
	rnd  *rand.Rand
}

// New returns a Client.
func New(o Options) (*Client, error) {
	if o.Resolver == nil {
		return nil, errors.New("outbound: a resolver is required")
	}
	if o.Hostname == "" {
		return nil, errors.New("outbound: hostname is required")
	}
	if o.Port == 0 {
		o.Port = 25
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 30 * time.Second
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = 5 * time.Minute
	}
	if o.Dial == nil {
		d := &net.Dialer{}
		o.Dial = d.DialContext
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.TLSConfig == nil {
		o.TLSConfig = &tls.Config{}
	}
	if o.ReuseIdle == 0 {
		o.ReuseIdle = 5 * time.Second
	}
	if o.ReuseMax <= 0 {
		o.ReuseMax = 100
	}
	if o.Relay != nil {
		if _, _, err := net.SplitHostPort(o.Relay.Addr); err != nil {
			return nil, fmt.Errorf("outbound: relay %q is not host:port", o.Relay.Addr)
		}
	}
	return &Client{opts: o, log: o.Logger, pool: newPool(o.ReuseIdle, o.ReuseMax), rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}, nil
}

// Close says QUIT on the idle connections and stops keeping any; Send still works afterwards, one connection
// per transaction.
func (c *Client) Close() error {
	c.pool.close()
	return nil
}

// Send delivers msg to every recipient and returns one Result per recipient, in the order of msg.Recipients.
// Recipients sharing a destination (a domain, or the relay) share one SMTP transaction; destinations are served
// in parallel.
func (c *Client) Send(ctx context.Context, msg *Message) []Result {
	sig, err := c.sign(ctx, msg)
	if err != nil {
		c.log.Warn("dkim signing failed; sending unsigned", "queue_id", msg.ID, "err", err)
	}
	if !msg.RequireTLS && !msg.TLSOptional && tlsRequiredNo(ctx, msg) {
		m := *msg
		m.TLSOptional = true
		msg = &m
	}
	groups := map[string][]int{}
	var order []string
	for i, r := range msg.Recipients {
		key := c.routeKey(domainOf(r.Address))
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], i)
	}
	results := make([]Result, len(msg.Recipients))
	var wg sync.WaitGroup
	for _, key := range order {
		idx := groups[key]
		wg.Go(func() {
			rcpts := make([]Recipient, len(idx))
			for j, i := range idx {
				rcpts[j] = msg.Recipients[i]
			}
			defer func() {
				if p := recover(); p != nil {
					c.log.Error("outbound panic", "queue_id", msg.ID, "destination", key, "panic", p)
					for j, i := range idx {
						results[i] = Result{Recipient: rcpts[j].Address, Code: 451, Enhanced: "4.3.0", Text: "Internal error"}
					}
				}
			}()
			res := c.deliverGroup(ctx, msg, sig, domainOf(rcpts[0].Address), rcpts)
			for j, i := range idx {
				results[i] = res[j]
			}
		})
	}
	wg.Wait()
	return results
}

// tlsRequiredNo reports whether msg's header says "TLS-Required: No" (RFC 8689 4.2.1; the value is
// case-insensitive and surrounding white space is ignored). A message that cannot be read is taken as not saying so.
func tlsRequiredNo(ctx context.Context, msg *Message) bool {
	r, err := msg.Open(ctx)
	if err != nil {
		return false
	}
	defer r.Close()
	h, err := textproto.ReadHeader(bufio.NewReader(io.LimitReader(r, 256<<10)))
	if err != nil {
		return false
	}
	return strings.EqualFold(strings.TrimSpace(h.Get("TLS-Required")), "no")
}

// sign returns the DKIM-Signature fields for msg.
func (c *Client) sign(ctx context.Context, msg *Message) (string, error) {
	if c.opts.Signer == nil {
		return "", nil
	}
	r, err := msg.Open(ctx)
	if err != nil {
		return "", err
	}
	defer r.Close()
	return c.opts.Signer.Sign(ctx, r)
}

func domainOf(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	return strings.ToLower(strings.TrimSuffix(addr[at+1:], "."))
}

// failAll gives every recipient the same made-up failure.
func failAll(rcpts []Recipient, code int, enhanced, text, remote string) []Result {
	out := make([]Result, len(rcpts))
	for i, r := range rcpts {
		out[i] = Result{Recipient: r.Address, Code: code, Enhanced: enhanced, Text: text, Remote: remote}
	}
	return out
}
