package rules

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/mail"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

const okHeader = "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: Lunch\r\n" +
	"Date: Mon, 23 Nov 2026 11:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n"

func hitsOf(t *testing.T, c *Check, txn *filter.Txn, msg string) []string {
	t.Helper()
	hits, err := c.Score(context.Background(), txn, msgOf([]byte(msg)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range hits {
		names = append(names, h.Symbol)
	}
	return names
}

func TestRules(t *testing.T) {
	c, err := New(Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	html := func(body string) string {
		return okHeader + "Content-Type: text/html; charset=utf-8\r\n\r\n<html><body>" + body + "</body></html>\r\n"
	}
	for _, tc := range []struct {
		name, msg string
		want      []string // exactly these rules
	}{
		{"clean", okHeader + "\r\nSee you at noon.\r\n", nil},
		{"gtube", okHeader + "\r\n" + gtube + "\r\n", []string{"GTUBE"}},
		{"gtube in base64 attachment", okHeader + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n--b\r\n" +
			"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			"WEpTKkM0SkRCUUFETjEuTlNCTjMqMklETkVOKkdUVUJFLVNUQU5EQVJELUFOVEktVUJFLVRFU1QtRU1BSUwqQy4zNFg=\r\n--b--\r\n", []string{"GTUBE"}},
		{"bare", "\r\nhello\r\n", []string{"MISSING_DATE", "MISSING_MID", "MISSING_FROM", "MISSING_SUBJECT", "MISSING_TO"}},
		{"invalid date", strings.Replace(okHeader, "Mon, 23 Nov 2026 11:00:00 +0000", "yesterday", 1) + "\r\nx\r\n", []string{"INVALID_DATE"}},
		{"future", strings.Replace(okHeader, "23 Nov 2026", "25 Nov 2026", 1) + "\r\nx\r\n", []string{"DATE_IN_FUTURE"}},
		{"past", strings.Replace(okHeader, "23 Nov 2026", "2 Nov 2026", 1) + "\r\nx\r\n", []string{"DATE_IN_PAST"}},
		{"from malformed", strings.Replace(okHeader, "Alice <alice@example.org>", "Alice", 1) + "\r\nx\r\n", []string{"FROM_MALFORMED"}},
		{"from name spoof", strings.Replace(okHeader, "Alice <alice@example.org>", `"service@paypal.com" <x@evil.example>`, 1) + "\r\nx\r\n", []string{"FROM_NAME_SPOOF"}},
		{"from name same site", strings.Replace(okHeader, "Alice <alice@example.org>", `"alice@www.example.org" <alice@example.org>`, 1) + "\r\nx\r\n", nil},
		{"caps subject", strings.Replace(okHeader, "Lunch", "FREE MONEY INSIDE", 1) + "\r\nx\r\n", []string{"SUBJ_ALL_CAPS"}},
		{"exclaim subject", strings.Replace(okHeader, "Lunch", "Lunch!!", 1) + "\r\nx\r\n", []string{"SUBJ_EXCLAIM"}},
		{"8bit subject", strings.Replace(okHeader, "Lunch", "Caf\xe9", 1) + "\r\nx\r\n", []string{"HEADER_8BIT"}},
		{"utf8 subject", strings.Replace(okHeader, "Lunch", "Café", 1) + "\r\nx\r\n", nil},
		{"many rcpts", strings.Replace(okHeader, "bob@example.net", strings.Repeat("a@example.net, ", 25)+"z@example.net", 1) + "\r\nx\r\n", []string{"TO_CC_MANY"}},
		{"html only", html("<p>Hello there, see you at noon.</p>"), []string{"MIME_HTML_ONLY"}},
		{"image only", html(`<img src="http://img.example.com/a.png">`), []string{"MIME_HTML_ONLY", "HTML_IMAGE_ONLY"}},
		{"base64 text", okHeader + "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n", []string{"MIME_BASE64_TEXT"}},
		{"unknown charset", okHeader + "Content-Type: text/plain; charset=x-klingon\r\n\r\nhi\r\n", []string{"MIME_CHARSET_UNKNOWN"}},
		{"missing boundary", okHeader + "Content-Type: multipart/mixed\r\n\r\nhi\r\n", []string{"MIME_MISSING_BOUNDARY"}},
		{"ip url", okHeader + "\r\nGo to http://192.0.2.7/login now\r\n", []string{"URI_IP_LITERAL"}},
		{"decimal ip url", okHeader + "\r\nGo to http://3221225991/login now\r\n", []string{"URI_IP_LITERAL"}},
		{"shortener", okHeader + "\r\nSee https://bit.ly/abc\r\n", []string{"URI_SHORTENER"}},
		{"userinfo", okHeader + "\r\nSee http://www.bank.example@evil.example/\r\n", []string{"URI_USERINFO"}},
		{"phish path", okHeader + "\r\nSee https://shop.example/wp-content/x/signin.php\r\n", []string{"URI_PHISH_PATH"}},
		{"link mismatch", okHeader + "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\n" +
			"Content-Type: text/html\r\n\r\n<a href=\"http://evil.example/x\">www.mybank.example</a> and more words here to read\r\n--b--\r\n", []string{"HTML_LINK_MISMATCH"}},
		{"link text same site", okHeader + "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\n" +
			"Content-Type: text/html\r\n\r\n<a href=\"https://news.example.com/x\">https://www.example.com/</a>\r\n--b--\r\n", nil},
		{"shouting", okHeader + "\r\n" + strings.Repeat("AMAZING OFFER TODAY ", 4) + "\r\n", []string{"BODY_SHOUTING"}},
		{"pharma", okHeader + "\r\nCheap Viagra here\r\n", []string{"PHRASE_PHARMA"}},
		{"419", okHeader + "\r\nI am a barrister; the next of kin of my late client\r\n", []string{"PHRASE_ADVANCE_FEE"}},
		{"one marketing phrase", okHeader + "\r\nclick here for the agenda\r\n", nil},
		{"marketing", okHeader + "\r\nClick here! Act now, limited time, order now, 100% free\r\n", []string{"PHRASE_MARKETING", "PHRASE_MARKETING_MANY"}},
		{"not spam", okHeader + "\r\nThis email is not spam under Bill S. 1618\r\n", []string{"PHRASE_NOT_SPAM"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hitsOf(t, c, nil, tc.msg); !slices.Equal(got, tc.want) {
				t.Errorf("hits %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAuthRules(t *testing.T) {
	c, _ := New(Options{Now: func() time.Time { return now }})
	msg := okHeader + "\r\nx\r\n"
	txn := &filter.Txn{Results: []authres.Result{
		&authres.SPFResult{Value: authres.ResultFail},
		&authres.DKIMResult{Value: authres.ResultFail},
		&authres.DMARCResult{Value: authres.ResultFail},
	}}
	if got := hitsOf(t, c, txn, msg); !slices.Equal(got, []string{"AUTH_SPF_FAIL", "AUTH_DKIM_INVALID", "AUTH_DMARC_FAIL"}) {
		t.Errorf("unscored results: %v", got)
	}
	// The spf and dmarc checks scored theirs; one DKIM signature passes.
	txn.Symbols = []string{"SPF_FAIL=3.5", "DMARC_QUARANTINE=2.0"}
	txn.Results = append(txn.Results, &authres.DKIMResult{Value: authres.ResultPass})
	if got := hitsOf(t, c, txn, msg); len(got) != 0 {
		t.Errorf("scored results counted again: %v", got)
	}
	txn = &filter.Txn{Results: []authres.Result{&authres.SPFResult{Value: authres.ResultSoftFail}}}
	if got := hitsOf(t, c, txn, msg); !slices.Equal(got, []string{"AUTH_SPF_SOFTFAIL"}) {
		t.Errorf("softfail: %v", got)
	}
}

func TestScoresOverride(t *testing.T) {
	if _, err := New(Options{Scores: map[string]float64{"NO_SUCH_RULE": 1}}); err == nil {
		t.Fatal("unknown symbol accepted")
	}
	c, err := New(Options{Scores: map[string]float64{"missing_date": 0, "MISSING_MID": 4}})
	if err != nil {
		t.Fatal(err)
	}
	hits, _ := c.Score(context.Background(), nil, msgOf([]byte("From: a@example.org\r\nSubject: x\r\nTo: b@example.org\r\n\r\nx\r\n")))
	if !slices.Equal(hits, []Hit{{"MISSING_MID", 4}}) {
		t.Fatalf("hits %v", hits)
	}
	for _, r := range c.Rules() {
		if r.Symbol == "MISSING_DATE" && r.Score != 0 {
			t.Fatalf("override not listed: %+v", r)
		}
	}
}

// TestPipeline runs the rules in a filter pipeline: every hit is its own symbol in X-Spam-Status, GTUBE is
// rejected at the reject threshold.
func TestPipeline(t *testing.T) {
	c, _ := New(Options{Now: func() time.Time { return now }})
	p := filter.New(filter.Options{Checks: []filter.Check{c}, JunkScore: 5, RejectScore: 15, SpamHeaders: true})
	ctx := context.Background()
	s, _ := p.Connect(ctx, filter.Conn{Listener: "smtp"})
	s.Mail(ctx, "Q1", mustAddr(t, "a@example.org"))
	o := s.Data(ctx, msgOf([]byte(strings.Replace(okHeader, "Lunch", "FREE MONEY INSIDE", 1)+"\r\nGo to http://192.0.2.7/\r\n")))
	if o.Verdict.Action != filter.Tag || o.Junk || o.Score != 3 {
		t.Fatalf("outcome %+v", o)
	}
	var status string
	for _, h := range o.Headers {
		if h.Name == "X-Spam-Status" {
			status = h.Value
		}
	}
	if status != "No, score=3.0 required=5.0 tests=SUBJ_ALL_CAPS=1.0,URI_IP_LITERAL=2.0" {
		t.Errorf("X-Spam-Status: %q", status)
	}
	s.Reset()
	s.Mail(ctx, "Q2", mustAddr(t, "a@example.org"))
	if o := s.Data(ctx, msgOf([]byte(okHeader+"\r\n"+gtube+"\r\n"))); o.Verdict.Action != filter.Reject || o.Verdict.Code != 554 {
		t.Fatalf("GTUBE outcome %+v", o)
	}
}

func FuzzScore(f *testing.F) {
	f.Add([]byte(okHeader + "\r\nhello http://1.2.3.4/ x\r\n"))
	f.Add([]byte("Content-Type: text/html\r\n\r\n<a href='http://u@h'>www.x.y</a><img><script>x</script><!--"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<a href=\r\n--b--"))
	c, _ := New(Options{Now: func() time.Time { return now }})
	f.Fuzz(func(t *testing.T, msg []byte) {
		if _, err := c.Score(context.Background(), &filter.Txn{}, msgOf(msg)); err != nil {
			t.Fatal(err)
		}
		scanHTML(string(msg))
	})
}

func mustAddr(t *testing.T, s string) mail.Address {
	t.Helper()
	a, err := mail.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
