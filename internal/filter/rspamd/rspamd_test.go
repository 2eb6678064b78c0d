package rspamd

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/engine/enginetest"
	"github.com/postern/postern/internal/mail"
)

// fakeRspamd answers /checkv2 with the action named in the message's Subject and records the request headers.
type fakeRspamd struct {
	mu   sync.Mutex // guards last
	last http.Header
}

func (f *fakeRspamd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/ping" {
		io.WriteString(w, "pong\r\n")
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/checkv2" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.last = r.Header.Clone()
	f.mu.Unlock()
	action := "no action"
	if _, s, ok := strings.Cut(string(body), "Subject: "); ok {
		action, _, _ = strings.Cut(s, "\r\n")
	}
	if action == "broken" {
		io.WriteString(w, "{not json")
		return
	}
	score := map[string]float64{"no action": 0.5, "add header": 7, "rewrite subject": 8, "reject": 20,
		"soft reject": 0, "greylist": 5, "zero": 0}[action]
	if action == "zero" {
		action = "no action"
	}
	json.NewEncoder(w).Encode(map[string]any{
		"is_skipped": false, "score": score, "required_score": 15, "action": action,
		"symbols": map[string]any{
			"R_SPF_ALLOW": map[string]any{"name": "R_SPF_ALLOW", "score": -0.2},
			"GTUBE":       map[string]any{"name": "GTUBE", "score": score},
		},
		"messages": map[string]any{"smtp_message": "Spam message rejected"},
		"milter": map[string]any{"add_headers": map[string]any{
			"X-Rspamd-Server": "test", "X-Spamd-Bar": map[string]any{"value": "+++", "order": 0},
			"Bad:Name": "x",
		}},
	})
}

func message(subject string) *filter.Message {
	return enginetest.Message("From: a@example.org\r\nSubject: " + subject + "\r\n\r\nbody\r\n")
}

func txn() *filter.Txn {
	from, _ := mail.ParseAddress("alice@example.org")
	r1, _ := mail.ParseAddress("bob@example.net")
	r2, _ := mail.ParseAddress("carol@example.net")
	return &filter.Txn{
		Conn:    &filter.Conn{IP: netip.MustParseAddr("192.0.2.7"), Helo: "mx.example.org", AuthUser: ""},
		QueueID: "Q42", From: from, Recipients: []mail.Address{r1, r2}, Values: map[string]any{},
	}
}

func TestActions(t *testing.T) {
	t.Parallel()
	f := &fakeRspamd{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(Options{URL: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	for _, tc := range []struct {
		action string
		want   filter.Action
		code   int
		junk   bool
	}{
		{"no action", filter.Tag, 0, false},
		{"zero", filter.Tag, 0, false}, // headers still to add
		{"add header", filter.Tag, 0, true},
		{"rewrite subject", filter.Tag, 0, true},
		{"reject", filter.Reject, 554, false},
		{"soft reject", filter.Tempfail, 451, false},
		{"greylist", filter.Tempfail, 451, false},
		{"broken", filter.Tempfail, 451, false},
	} {
		t.Run(tc.action, func(t *testing.T) {
			tx := txn()
			v := c.Data(context.Background(), tx, message(tc.action))
			if v.Action != tc.want || v.Code != tc.code || v.Junk != tc.junk {
				t.Fatalf("verdict %+v", v)
			}
			if v.Action == filter.Tag {
				if v.Symbol != "RSPAMD" || len(v.Headers) != 2 || v.Headers[0].Name != "X-Rspamd-Server" || v.Headers[1].Value != "+++" {
					t.Errorf("tag verdict %+v", v)
				}
				if _, ok := tx.Values["rspamd"].(Result); !ok {
					t.Errorf("Values[rspamd] not set")
				}
			}
			if tc.action == "reject" && v.Message != "Spam message rejected" {
				t.Errorf("reject text %q", v.Message)
			}
		})
	}
	f.mu.Lock()
	h := f.last
	f.mu.Unlock()
	if h.Get("IP") != "192.0.2.7" || h.Get("Helo") != "mx.example.org" || h.Get("From") != "alice@example.org" ||
		h.Get("Queue-Id") != "Q42" || len(h.Values("Rcpt")) != 2 || h.Get("User") != "" {
		t.Errorf("request headers %v", h)
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
	enginetest.TestFailures(t, func(addr, onError string) (filter.DataChecker, error) {
		return New(Options{URL: "http://" + addr, OnError: onError})
	}, txn)
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{{}, {URL: "127.0.0.1:11333"}, {URL: "ftp://x/"}, {URL: "http://x", OnError: "no"}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v): no error", o)
		}
	}
}

func FuzzParseResult(f *testing.F) {
	f.Add([]byte(`{"score":7.5,"required_score":15,"action":"add header","symbols":{"A":{"name":"A","score":7.5}},"milter":{"add_headers":{"X-A":[{"value":"1"},"2"]}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResult(b)
		if err != nil {
			return
		}
		v := verdict(r)
		for _, h := range v.Headers {
			if !validName(h.Name) || strings.ContainsAny(h.Value, "\r\n") {
				t.Errorf("unsafe header %q: %q", h.Name, h.Value)
			}
		}
		if strings.ContainsAny(v.Message, "\r\n") {
			t.Errorf("unsafe reply text %q", v.Message)
		}
	})
}
