package imapserver

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// panicCatcher fails the fuzz run when a session logs a recovered panic.
type panicCatcher struct{ panicked atomic.Pointer[string] }

func (p *panicCatcher) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicCatcher) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		var s string
		r.Attrs(func(a slog.Attr) bool { s += a.String() + "\n"; return true })
		p.panicked.Store(&s)
	}
	return nil
}
func (p *panicCatcher) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *panicCatcher) WithGroup(string) slog.Handler      { return p }

var fuzzSeeds = []string{
	"a1 CAPABILITY\r\na2 NOOP\r\n",
	"a1 SELECT INBOX\r\na2 FETCH 1:* (FLAGS UID BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.10> BINARY[1] ENVELOPE)\r\n",
	"a1 SELECT INBOX (CONDSTORE)\r\na2 UID FETCH 1:* FLAGS (CHANGEDSINCE 1)\r\na3 STORE 1 (UNCHANGEDSINCE 5) +FLAGS (\\Seen)\r\n",
	"a1 ENABLE QRESYNC\r\na2 SELECT INBOX (QRESYNC (1 2 1:5 (1:3 1:3)))\r\n",
	"a1 SELECT INBOX\r\na2 SEARCH RETURN (MIN MAX COUNT SAVE) CHARSET UTF-8 OR (SEEN FROM x) NOT UID 1:*,$ SINCE 1-Jan-2020\r\n",
	"a1 SELECT INBOX\r\na2 UID SORT (REVERSE DATE SUBJECT) UTF-8 ALL\r\na3 THREAD REFERENCES UTF-8 ALL\r\n",
	"a1 APPEND INBOX (\\Seen) \"01-Jan-2024 10:00:00 +0000\" {5+}\r\nhello {3+}\r\nabc\r\n",
	"a1 APPEND INBOX {5}\r\nhello\r\n",
	"a1 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"*\" \"%\") RETURN (CHILDREN STATUS (MESSAGES SIZE))\r\n",
	"a1 CREATE foo/bar (USE (\\Archive))\r\na2 RENAME foo baz\r\na3 DELETE baz/bar\r\na4 STATUS INBOX (MESSAGES UIDNEXT DELETED)\r\n",
	"a1 SELECT INBOX\r\na2 IDLE\r\nDONE\r\na3 COPY 1:* Trash\r\na4 UID MOVE 1 Junk\r\na5 UID EXPUNGE 1:*\r\na6 CLOSE\r\n",
	"a1 ID (\"name\" \"x\")\r\na2 GETQUOTAROOT INBOX\r\na3 NAMESPACE\r\na4 LSUB \"\" *\r\n",
	"a1 FETCH {3}\r\n",
	"a1 LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n",
	"a1 AUTHENTICATE PLAIN\r\n*\r\n",
	"* BAD\r\n\xff\xfe\r\na1 SEARCH ((((((((\r\n",
	"a1 COMPRESS DEFLATE\r\n",
}

// FuzzCommand drives a whole session (already authenticated, on the real store) with arbitrary client bytes:
// every parser and handler sees them; any panic fails.
func FuzzCommand(f *testing.F) {
	catcher := &panicCatcher{}
	e := newEnv(f, func(o *Options) { o.Logger = slog.New(catcher) })
	for i := 1; i <= 3; i++ {
		e.deliver("INBOX", msgN(i))
	}
	e.deliver("INBOX", multipartMsg)
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c1, c2 := net.Pipe()
		sess := newSession(e.srv, c1, netip.MustParseAddr("127.0.0.1"))
		sess.state, sess.user = stateAuth, e.user
		done := make(chan struct{})
		go func() {
			defer close(done)
			sess.Serve()
		}()
		go io.Copy(io.Discard, c2)
		c2.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c2.Write(data)
		c2.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("session did not end for input %q", data)
		}
		if p := catcher.panicked.Load(); p != nil {
			t.Fatalf("panic for input %q:\n%s", data, *p)
		}
	})
}
