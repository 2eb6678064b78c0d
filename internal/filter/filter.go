// Package filter runs the inbound checks of an SMTP transaction stage by stage — connect, HELO, MAIL, RCPT, DATA —
// and combines their verdicts: accept, tag (headers, spam score, file into Junk), tempfail or reject.
//
// Each check is its own sub-package (spf, dkim, dmarc, dnsbl, greylist, rules, bayes, clamav, spamd, rspamd,
// milter, ...) and implements one or more of the stage interfaces below. A Pipeline holds the checks configured for
// one listener (the MX listener runs the spam checks; authenticated submission by default only the virus scan).
// The SMTP server opens a Session per connection; delivery runs its Data stage on the spooled message before the
// message is stored, so headers the checks add are in the one stored copy.
//
// Verdict combination: at each stage the checks run in the configured order; the first Reject or Tempfail ends the
// stage. Scores add up over the whole transaction; at DATA the sum is compared with the junk and reject
// thresholds. Authentication results (SPF, DKIM, DMARC, ARC, ...) are collected in the Txn and written as one
// Authentication-Results header (RFC 8601).
package filter

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/authres"

	"github.com/postern/postern/internal/mail"
)

// Action is what a verdict asks for.
type Action int

// The actions, in increasing severity.
const (
	Accept   Action = iota // no objection
	Tag                    // deliver, but with the verdict's headers, score or Junk filing
	Tempfail               // 4xx: try again later
	Reject                 // 5xx: refuse
)

func (a Action) String() string {
	switch a {
	case Accept:
		return "accept"
	case Tag:
		return "tag"
	case Tempfail:
		return "tempfail"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Verdict is one check's answer at one stage. The zero Verdict accepts.
type Verdict struct {
	Action Action
	// Code, Enhanced and Message are the SMTP reply for Tempfail and Reject (RFC 5321 4.2, RFC 3463). Empty:
	// 451 4.7.1 / 550 5.7.1 (554 5.7.1 at DATA) with a generic text.
	Code     int
	Enhanced string
	Message  string
	// Reason is written to the mail log (never shown to the client unless it is also the Message).
	Reason string
	// Score is added to the transaction's spam score; Symbol names the rule for X-Spam-Status (e.g. "GTUBE").
	Score  float64
	Symbol string
	// Junk files the message into the recipients' Junk folder (e.g. DMARC p=quarantine).
	Junk bool
	// Headers are added at the top of the stored message.
	Headers []Header
}

// Header is one header field to add.
type Header struct {
	Name, Value string
}

// Conn is what is known of the client when it connects (and after HELO and AUTH).
type Conn struct {
	IP       netip.Addr
	Listener string // "smtp", "submission", "submissions"
	Helo     string
	TLS      bool
	AuthUser string // canonical address of the authenticated user; "" when not authenticated
	// Trusted is set on the MX listener for a client the access table lets in (OK, RELAY): the server waives every
	// refusal before DATA for it, so the checks that only refuse or count before DATA (dnsbl, greylist,
	// ratelimit) skip it instead of running for nothing: no greylist triplet, no counter, no mail log line.
	Trusted bool
}

// Txn is the state of one transaction, shared by the checks of a session. Checks may keep their own results in
// Values (keyed by their Name) for later stages or later checks (DMARC reads SPF's and DKIM's).
type Txn struct {
	Conn       *Conn
	QueueID    string
	From       mail.Address // zero for the null reverse-path
	Recipients []mail.Address
	// Results are the authentication results for the Authentication-Results header, in check order.
	Results []authres.Result
	// Score is the spam score so far; Symbols the rules that added to it ("NAME=score").
	Score   float64
	Symbols []string
	Values  map[string]any
}

// Message is the received message at the DATA stage. Open may be called any number of times; each reader sees
// the whole message (the Received header this server added first). Header is its parsed header block.
type Message struct {
	Size   int64
	Header textproto.Header
	Open   func() (io.ReadCloser, error)

	memoMu sync.Mutex
	memo   map[string]any
}

// Memo returns what compute derives from the message, computing it once per key: a per-user check (the
// statistical filter) runs once for every local recipient but tokenizes the message only the first time. An
// error is returned and not kept.
func (m *Message) Memo(key string, compute func() (any, error)) (any, error) {
	m.memoMu.Lock()
	defer m.memoMu.Unlock()
	if v, ok := m.memo[key]; ok {
		return v, nil
	}
	v, err := compute()
	if err != nil {
		return nil, err
	}
	if m.memo == nil {
		m.memo = map[string]any{}
	}
	m.memo[key] = v
	return v, nil
}

// Check is a named filter; it implements at least one of the stage interfaces.
type Check interface {
	Name() string
}

// The stage interfaces. A check's method is called once per stage event; it must honour ctx (the pipeline sets a
// deadline) and never panic on any input.
type (
	ConnectChecker interface {
		Check
		Connect(ctx context.Context, t *Txn) Verdict
	}
	HeloChecker interface {
		Check
		Helo(ctx context.Context, t *Txn) Verdict
	}
	MailChecker interface {
		Check
		Mail(ctx context.Context, t *Txn) Verdict
	}
	RcptChecker interface {
		Check
		Rcpt(ctx context.Context, t *Txn, rcpt mail.Address) Verdict
	}
	DataChecker interface {
		Check
		Data(ctx context.Context, t *Txn, m *Message) Verdict
	}
)

// UserClassifier judges a message for one local recipient: the per-user statistical filter (bayes). Delivery asks
// it for each local user whose copy is not already going to Junk; spam files that user's copy into Junk.
type UserClassifier interface {
	Classify(ctx context.Context, userID int64, m *Message) (spam bool, probability float64, err error)
}

// Event is one check's verdict, for the mail log.
type Event struct {
	QueueID string
	Stage   string
	Check   string
	Verdict Verdict
}

// Options configure a Pipeline.
type Options struct {
	Checks []Check
	// AuthServID names this server in Authentication-Results (RFC 8601 2.5); usually the hostname. Headers with
	// this authserv-id that arrive from outside are forged and removed (RFC 8601 5).
	AuthServID string
	// JunkScore and RejectScore are the spam score thresholds (0: none). At or above JunkScore the message is
	// filed into Junk; at or above RejectScore it is refused with 554 at DATA.
	JunkScore, RejectScore float64
	// SpamHeaders adds X-Spam-Status and X-Spam-Score (when any check scored).
	SpamHeaders bool
	// CheckTimeout bounds one check at one stage (default 30 s).
	CheckTimeout time.Duration
	// Log receives each verdict that is not a plain Accept (for the mail log); may be nil.
	Log    func(Event)
	Logger *slog.Logger
}

// Pipeline is the set of checks of one listener. It is safe for concurrent use.
type Pipeline struct {
	opts Options
}

// New returns a Pipeline.
func New(o Options) *Pipeline {
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Pipeline{opts: o}
}

// AuthServID is the authserv-id of this pipeline's Authentication-Results header.
func (p *Pipeline) AuthServID() string { return p.opts.AuthServID }

// Session is one SMTP connection's run through the pipeline. It is used by one goroutine at a time.
type Session struct {
	p    *Pipeline
	conn Conn
	txn  *Txn
	// connVerdict is a Connect or HELO stage verdict that asked to tag: it carries into every transaction.
	carry []Verdict
}

// Connect starts a session for a new client. A Reject or Tempfail verdict asks the server to refuse the
// connection (or, as Postfix does by default, to refuse each RCPT, so the log shows who was turned away).
func (p *Pipeline) Connect(ctx context.Context, c Conn) (*Session, Verdict) {
	s := &Session{p: p, conn: c}
	s.newTxn()
	v := s.run(ctx, "connect", func(ctx context.Context, ch Check) (Verdict, bool) {
		if cc, ok := ch.(ConnectChecker); ok {
			return cc.Connect(ctx, s.txn), true
		}
		return Verdict{}, false
	})
	return s, v
}

// Helo records the HELO/EHLO name and runs the HELO stage.
func (s *Session) Helo(ctx context.Context, name string) Verdict {
	s.conn.Helo = name
	return s.run(ctx, "helo", func(ctx context.Context, ch Check) (Verdict, bool) {
		if hc, ok := ch.(HeloChecker); ok {
			return hc.Helo(ctx, s.txn), true
		}
		return Verdict{}, false
	})
}

// SetTLS and SetAuthUser record what STARTTLS and AUTH established.
func (s *Session) SetTLS(on bool)         { s.conn.TLS = on }
func (s *Session) SetAuthUser(who string) { s.conn.AuthUser = who }

// Conn returns what the session knows of the client.
func (s *Session) Conn() Conn { return s.conn }

// Mail starts a transaction with the reverse-path from and runs the MAIL stage.
func (s *Session) Mail(ctx context.Context, queueID string, from mail.Address) Verdict {
	s.newTxn()
	s.txn.QueueID, s.txn.From = queueID, from
	return s.run(ctx, "mail", func(ctx context.Context, ch Check) (Verdict, bool) {
		if mc, ok := ch.(MailChecker); ok {
			return mc.Mail(ctx, s.txn), true
		}
		return Verdict{}, false
	})
}

// Rcpt runs the RCPT stage for one recipient; the recipient is added to the transaction only when the verdict
// lets it through.
func (s *Session) Rcpt(ctx context.Context, rcpt mail.Address) Verdict {
	v := s.run(ctx, "rcpt", func(ctx context.Context, ch Check) (Verdict, bool) {
		if rc, ok := ch.(RcptChecker); ok {
			return rc.Rcpt(ctx, s.txn, rcpt), true
		}
		return Verdict{}, false
	})
	if v.Action < Tempfail {
		s.txn.Recipients = append(s.txn.Recipients, rcpt)
	}
	return v
}

// Reset ends the transaction (RSET, or after the DATA reply).
func (s *Session) Reset() { s.newTxn() }

// Txn returns the current transaction (for tests and for delivery's per-user decisions).
func (s *Session) Txn() *Txn { return s.txn }

func (s *Session) newTxn() {
	s.txn = &Txn{Conn: &s.conn, Values: map[string]any{}}
	for _, v := range s.carry {
		s.txn.add(v)
	}
}

// stageFunc calls one check at a stage; ok is false when the check has no part in that stage.
type stageFunc func(ctx context.Context, ch Check) (v Verdict, ok bool)

// run calls every check at one stage and combines the verdicts: the first Reject or Tempfail wins, Tag verdicts
// accumulate in the transaction.
func (s *Session) run(ctx context.Context, stage string, call stageFunc) Verdict {
	var out Verdict
	for _, ch := range s.p.opts.Checks {
		v, ok := s.call(ctx, stage, ch, call)
		if !ok {
			continue
		}
		if v.Action != Accept || v.Reason != "" || v.Score != 0 {
			s.log(stage, ch, v)
		}
		switch v.Action {
		case Reject, Tempfail:
			return v
		case Tag:
			s.txn.add(v)
			if stage == "connect" || stage == "helo" {
				s.carry = append(s.carry, v)
			}
			out.Action = Tag
		}
	}
	return out
}

// call runs one check with the pipeline's timeout and turns a panic into a tempfail (a check bug must not kill
// the session or accept mail it could not judge).
func (s *Session) call(ctx context.Context, stage string, ch Check, call stageFunc) (v Verdict, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, s.p.opts.CheckTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			s.p.opts.Logger.Error("filter check panicked", "check", ch.Name(), "stage", stage, "panic", r)
			v, ok = Verdict{Action: Tempfail, Reason: fmt.Sprintf("check %s failed", ch.Name())}, true
		}
	}()
	return call(ctx, ch)
}

func (s *Session) log(stage string, ch Check, v Verdict) {
	if s.p.opts.Log != nil {
		s.p.opts.Log(Event{QueueID: s.txn.QueueID, Stage: stage, Check: ch.Name(), Verdict: v})
	}
}

// AddScore adds score to the transaction's spam score under symbol, as X-Spam-Status will name it. A check that
// scores several rules at once (the built-in rules) calls it per rule; a single score goes in Verdict.Score.
func (t *Txn) AddScore(symbol string, score float64) {
	if symbol == "" {
		symbol = "UNNAMED"
	}
	t.Score += score
	t.Symbols = append(t.Symbols, fmt.Sprintf("%s=%.1f", symbol, score))
}

// add folds a Tag verdict into the transaction.
func (t *Txn) add(v Verdict) {
	if v.Score != 0 {
		t.AddScore(v.Symbol, v.Score)
	}
	if v.Junk {
		t.Values[junkKey] = true
	}
	if len(v.Headers) > 0 {
		hs, _ := t.Values[headersKey].([]Header)
		t.Values[headersKey] = append(hs, v.Headers...)
	}
}

const (
	junkKey    = "filter.junk"
	headersKey = "filter.headers"
)

// AddResult records an authentication result for the Authentication-Results header.
func (t *Txn) AddResult(r authres.Result) { t.Results = append(t.Results, r) }

// Outcome is the end of the DATA stage: what delivery must do with the message.
type Outcome struct {
	// Verdict is Accept, Tag, Tempfail or Reject; for the last two it carries the reply.
	Verdict Verdict
	// Headers go on top of the stored message, in order (Authentication-Results first).
	Headers []Header
	// Junk files the message into Junk.
	Junk  bool
	Score float64
	// StripAuthResults is the authserv-id whose Authentication-Results headers must be removed from the
	// message as received (RFC 8601 5); "" for none.
	StripAuthResults string
}

// Data runs the DATA stage on m and combines the whole transaction into an Outcome.
func (s *Session) Data(ctx context.Context, m *Message) Outcome {
	v := s.run(ctx, "data", func(ctx context.Context, ch Check) (Verdict, bool) {
		if dc, ok := ch.(DataChecker); ok {
			return dc.Data(ctx, s.txn, m), true
		}
		return Verdict{}, false
	})
	o := Outcome{StripAuthResults: s.p.opts.AuthServID, Score: s.txn.Score}
	if v.Action >= Tempfail {
		o.Verdict = v
		return o
	}
	t := s.txn
	if rs := s.p.opts.RejectScore; rs > 0 && t.Score >= rs {
		o.Verdict = Verdict{Action: Reject, Code: 554, Enhanced: "5.7.1", Message: "Message rejected as spam",
			Reason: fmt.Sprintf("spam score %.1f >= %.1f (%s)", t.Score, rs, strings.Join(t.Symbols, ","))}
		if s.p.opts.Log != nil {
			s.p.opts.Log(Event{QueueID: t.QueueID, Stage: "data", Check: "score", Verdict: o.Verdict})
		}
		return o
	}
	o.Verdict.Action = v.Action
	o.Junk, _ = t.Values[junkKey].(bool)
	if js := s.p.opts.JunkScore; js > 0 && t.Score >= js {
		o.Junk = true
	}
	if len(t.Results) > 0 && s.p.opts.AuthServID != "" {
		o.Headers = append(o.Headers, Header{"Authentication-Results", authres.Format(s.p.opts.AuthServID, t.Results)})
	}
	if s.p.opts.SpamHeaders && len(t.Symbols) > 0 {
		o.Headers = append(o.Headers, s.spamHeaders(o.Junk)...)
	}
	hs, _ := t.Values[headersKey].([]Header)
	o.Headers = append(o.Headers, hs...)
	return o
}

// spamHeaders renders X-Spam-Status and X-Spam-Score the way SpamAssassin does, so existing client rules match.
func (s *Session) spamHeaders(junk bool) []Header {
	t := s.txn
	yes := "No"
	if junk {
		yes = "Yes"
	}
	syms := slices.Clone(t.Symbols)
	slices.Sort(syms)
	return []Header{
		{"X-Spam-Status", fmt.Sprintf("%s, score=%.1f required=%.1f tests=%s", yes, t.Score, s.p.opts.JunkScore, strings.Join(syms, ","))},
		{"X-Spam-Score", fmt.Sprintf("%.1f", t.Score)},
	}
}

// Reply returns the SMTP reply of a Tempfail or Reject verdict at a stage, with the defaults filled in.
func (v Verdict) Reply(stage string) (code int, enhanced, text string) {
	code, enhanced, text = v.Code, v.Enhanced, v.Message
	if code == 0 {
		switch {
		case v.Action == Tempfail:
			code = 451
		case stage == "data":
			code = 554
		default:
			code = 550
		}
	}
	if enhanced == "" {
		enhanced = fmt.Sprintf("%d.7.1", code/100)
	}
	if text == "" {
		if v.Action == Tempfail {
			text = "Try again later"
		} else {
			text = "Rejected by policy"
		}
	}
	return code, enhanced, text
}
