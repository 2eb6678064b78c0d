// Package maillog writes the mail log: one line per message event (received, delivered, queued, rejected, ...),
// keyed by queue ID, in the spirit of /var/log/maillog — what admins grep.
package maillog

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Event is one line of the mail log.
type Event struct {
	QueueID string
	Event   string // received, delivered, queued, rejected, deferred, bounced, discarded
	From    string
	To      string
	Size    int64
	Status  string // e.g. "250 2.0.0"
	Detail  string
	Remote  string
	User    string
}

// Logger writes events; safe for concurrent use.
type Logger struct {
	mu  sync.Mutex // guards w
	w   io.Writer
	now func() time.Time
}

// New returns a Logger writing to w; now nil means time.Now.
func New(w io.Writer, now func() time.Time) *Logger {
	if now == nil {
		now = time.Now
	}
	return &Logger{w: w, now: now}
}

// Log writes e as one line. A nil Logger discards.
func (l *Logger) Log(e Event) {
	if l == nil {
		return
	}
	var b strings.Builder
	b.WriteString(l.now().UTC().Format(time.RFC3339))
	b.WriteByte(' ')
	if e.QueueID == "" {
		e.QueueID = "-"
	}
	b.WriteString(e.QueueID)
	b.WriteByte(' ')
	b.WriteString(e.Event)
	field := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%s", k, quote(v))
		}
	}
	if e.From != "" || e.Event == "received" {
		fmt.Fprintf(&b, " from=<%s>", e.From)
	}
	if e.To != "" {
		fmt.Fprintf(&b, " to=<%s>", e.To)
	}
	if e.Size > 0 {
		fmt.Fprintf(&b, " size=%d", e.Size)
	}
	field("remote", e.Remote)
	field("user", e.User)
	field("status", e.Status)
	field("detail", e.Detail)
	b.WriteByte('\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.w, b.String())
}

func quote(v string) string {
	if strings.ContainsAny(v, " \t\"=\n\r") {
		return strconv.Quote(v)
	}
	return v
}
