// Package rspamd is the check that asks rspamd for a verdict: an HTTP POST of the message to its normal worker's
// /checkv2 endpoint with the envelope in request headers (IP, Helo, From, Rcpt, Queue-Id, User), answered with
// JSON: score, required_score, action and symbols (rspamd's "Protocol" documentation).
//
// rspamd's action maps onto verdicts:
//
//	reject          → Reject 554 5.7.1 (rspamd's messages.smtp_message as the text when it gives one)
//	soft reject     → Tempfail 451 4.7.1
//	greylist        → Tempfail 451 4.7.1 ("greylisted"), as rspamd's own milter does
//	add header      → Tag: file into Junk
//	rewrite subject → Tag: file into Junk (the subject is not rewritten: Postern does not change the message body
//	                  or existing headers; Junk filing is the rewrite's purpose)
//	no action       → Tag with the score only
//
// The score is contributed with Symbol "RSPAMD" in every non-refusing case, so the pipeline's thresholds see it
// too. Headers rspamd asks to add (milter.add_headers) are added; removals (milter.remove_headers) are not done.
// The answer is kept in Txn.Values["rspamd"] (type Result).
//
// Config keys (wired by internal/app): [antispam] rspamd → Options.URL (base URL, e.g. "http://127.0.0.1:11333"),
// [antispam] on_error → Options.OnError, optional [antispam] rspamd_timeout → Options.Timeout,
// rspamd_password → Options.Password (only needed when the URL is the controller), rspamd_max_size → MaxSize.
package rspamd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/engine"
)

// Options configure the check.
type Options struct {
	URL      string // base URL of rspamd's normal worker (or controller); required
	OnError  string // "tempfail" (default) or "accept" when rspamd cannot answer
	Timeout  time.Duration
	Password string // Password header for the controller
	// MaxSize: larger messages are not sent and pass unscored (default 20 MiB; negative: no limit).
	MaxSize int64
	// Client is the HTTP client (default: one with no proxy from the environment).
	Client *http.Client
	Logger *slog.Logger
}

// Check asks rspamd. It is safe for concurrent use.
type Check struct {
	o        Options
	endpoint string
	cl       engine.Client
}

// New returns a Check for o.
func New(o Options) (*Check, error) {
	u, err := url.Parse(strings.TrimSpace(o.URL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("rspamd: URL %q: want http://host:port", o.URL)
	}
	cl, err := engine.NewClient("rspamd", engine.Config{OnError: o.OnError, Timeout: o.Timeout, MaxSize: o.MaxSize,
		Logger: o.Logger}, 20<<20)
	if err != nil {
		return nil, err
	}
	if o.Client == nil {
		// The rspamd worker is a local service: an HTTP_PROXY in the environment must not reroute the mail.
		o.Client = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}}
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/checkv2"
	return &Check{o: o, endpoint: u.String(), cl: cl}, nil
}

// Name implements filter.Check.
func (c *Check) Name() string { return "rspamd" }

// Result is rspamd's answer (the fields of /checkv2's JSON that Postern uses).
type Result struct {
	Score         float64           `json:"score"`
	RequiredScore float64           `json:"required_score"`
	Action        string            `json:"action"`
	Symbols       map[string]Symbol `json:"symbols"`
	Messages      map[string]any    `json:"messages"`
	Milter        *Milter           `json:"milter"`
}

// Symbol is one rule that matched.
type Symbol struct {
	Name  string  `json:"name"`
	Score float64 `json:"score"`
}

// Milter is rspamd's request to change headers.
type Milter struct {
	// AddHeaders maps a name to a value, or to {"value": ..., "order": ...}, or to a list of such.
	AddHeaders    map[string]json.RawMessage `json:"add_headers"`
	RemoveHeaders map[string]json.RawMessage `json:"remove_headers"`
}

// ParseResult decodes a /checkv2 answer.
func ParseResult(b []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return Result{}, fmt.Errorf("rspamd: answer: %w", err)
	}
	if r.Action == "" {
		return Result{}, fmt.Errorf("rspamd: answer without an action")
	}
	if bad(r.Score) || bad(r.RequiredScore) {
		return Result{}, fmt.Errorf("rspamd: answer with score %v", r.Score)
	}
	return r, nil
}

func bad(f float64) bool { return math.IsNaN(f) || math.Abs(f) > 1e9 }

// Ping asks rspamd's /ping (answered "pong"): a startup check that the worker is there.
func (c *Check) Ping(ctx context.Context) error {
	ctx, cancel := c.cl.WithTimeout(ctx)
	defer cancel()
	u := strings.TrimSuffix(c.endpoint, "/checkv2") + "/ping"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("rspamd: %w", err)
	}
	resp, err := c.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("rspamd: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "pong") {
		return fmt.Errorf("rspamd: /ping answered %s %q", resp.Status, b)
	}
	return nil
}

// Request is the envelope sent with the message.
type Request struct {
	IP, Helo, From, QueueID, User string
	Rcpt                          []string
}

// Check posts msg with the envelope req and returns rspamd's answer.
func (c *Check) Check(ctx context.Context, req Request, msg []byte) (Result, error) {
	ctx, cancel := c.cl.WithTimeout(ctx)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(msg))
	if err != nil {
		return Result{}, fmt.Errorf("rspamd: %w", err)
	}
	set := func(k, v string) {
		if v = engine.HeaderSafe(v); v != "" {
			hr.Header.Add(k, v)
		}
	}
	set("IP", req.IP)
	set("Helo", req.Helo)
	set("From", req.From)
	set("Queue-Id", req.QueueID)
	set("User", req.User)
	for _, r := range req.Rcpt {
		set("Rcpt", r)
	}
	set("Password", c.o.Password)
	resp, err := c.o.Client.Do(hr)
	if err != nil {
		return Result{}, fmt.Errorf("rspamd: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return Result{}, fmt.Errorf("rspamd: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Result{}, fmt.Errorf("rspamd: HTTP %s: %.200s", resp.Status, body)
	}
	return ParseResult(body)
}

// Data implements filter.DataChecker.
func (c *Check) Data(ctx context.Context, t *filter.Txn, m *filter.Message) filter.Verdict {
	msg, v, ok := c.cl.ReadMessage(t.QueueID, m)
	if !ok {
		return v
	}
	res, err := c.Check(ctx, envelope(t), msg)
	if err != nil {
		return c.cl.Fail(err)
	}
	if t.Values != nil {
		t.Values[c.Name()] = res
	}
	c.cl.Log.Info("rspamd answered", "queue_id", t.QueueID, "action", res.Action, "score", res.Score,
		"required", res.RequiredScore, "symbols", strings.Join(res.symbolList(), ","))
	return verdict(res)
}

func envelope(t *filter.Txn) Request {
	var req Request
	if t.Conn != nil {
		if t.Conn.IP.IsValid() {
			req.IP = t.Conn.IP.String()
		}
		req.Helo, req.User = t.Conn.Helo, t.Conn.AuthUser
	}
	req.From, req.QueueID = t.From.String(), t.QueueID
	for _, r := range t.Recipients {
		req.Rcpt = append(req.Rcpt, r.String())
	}
	return req
}

func (r Result) symbolList() []string {
	var out []string
	for name, s := range r.Symbols {
		out = append(out, fmt.Sprintf("%s(%.2f)", name, s.Score))
	}
	slices.Sort(out)
	return out
}

// verdict maps rspamd's action onto a filter verdict (see the package doc).
func verdict(r Result) filter.Verdict {
	reason := fmt.Sprintf("rspamd: action=%q score=%.2f/%.2f symbols=%s", r.Action, r.Score, r.RequiredScore,
		strings.Join(r.symbolList(), ","))
	v := filter.Verdict{Action: filter.Tag, Score: r.Score, Symbol: "RSPAMD", Reason: reason, Headers: r.addHeaders()}
	switch strings.ToLower(r.Action) {
	case "reject":
		msg := "Message rejected as spam"
		if s, ok := r.Messages["smtp_message"].(string); ok && engine.HeaderSafe(s) != "" {
			msg = truncate(engine.HeaderSafe(s), 200)
		}
		return filter.Verdict{Action: filter.Reject, Code: 554, Enhanced: "5.7.1", Message: msg, Reason: reason}
	case "soft reject":
		return filter.Verdict{Action: filter.Tempfail, Code: 451, Enhanced: "4.7.1", Message: "Try again later",
			Reason: reason}
	case "greylist":
		return filter.Verdict{Action: filter.Tempfail, Code: 451, Enhanced: "4.7.1",
			Message: "Greylisted, try again later", Reason: reason}
	case "add header", "rewrite subject":
		v.Junk = true
	}
	if v.Score == 0 && len(v.Headers) == 0 && !v.Junk {
		return filter.Verdict{Reason: reason}
	}
	return v
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// addHeaders turns milter.add_headers into headers to add, in a stable order.
func (r Result) addHeaders() []filter.Header {
	if r.Milter == nil {
		return nil
	}
	var out []filter.Header
	for name, raw := range r.Milter.AddHeaders {
		if !validName(name) {
			continue
		}
		for _, v := range headerValues(raw) {
			out = append(out, filter.Header{Name: name, Value: v})
		}
	}
	slices.SortStableFunc(out, func(a, b filter.Header) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// headerValues accepts "value", {"value": "...", "order": n} or a list of either.
func headerValues(raw json.RawMessage) []string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return clean(s)
	}
	var obj struct {
		Value string `json:"value"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.Value != "" {
		return clean(obj.Value)
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		var out []string
		for _, e := range list {
			out = append(out, headerValues(e)...)
		}
		return out
	}
	return nil
}

func clean(v string) []string {
	// A value may arrive folded with LF or CRLF; unfold so the writer can fold it again (RFC 5322 2.2.3).
	v = strings.Join(strings.Fields(engine.HeaderSafe(strings.NewReplacer("\r", " ", "\n", " ").Replace(v))), " ")
	if v == "" {
		return nil
	}
	return []string{v}
}

// validName: RFC 5322 2.2 field names are printable ASCII except colon.
func validName(n string) bool {
	if n == "" || len(n) > 76 {
		return false
	}
	for _, c := range []byte(n) {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}
