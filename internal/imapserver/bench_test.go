package imapserver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/store"
)

// BenchmarkSelectFetchFlags: SELECT a 10,000-message mailbox and FETCH 1:* (UID FLAGS) over TCP, the first thing
// every client does. Neither reads a message body.
func BenchmarkSelectFetchFlags(b *testing.B) {
	e := newEnv(b, nil)
	ctx := context.Background()
	ref, err := e.st.Blobs().Put(ctx, strings.NewReader(msgN(1)))
	if err != nil {
		b.Fatal(err)
	}
	meta, _ := parseMetaBytes([]byte(msgN(1)))
	const n = 10000
	for i := 0; i < n; i++ {
		var flags []string
		if i%3 == 0 {
			flags = []string{`\Seen`}
		}
		if _, err := e.st.Append(ctx, store.AppendRequest{MailboxID: e.inbox.ID, Blob: ref, Flags: flags,
			InternalDate: time.Now(), Meta: meta}); err != nil {
			b.Fatal(err)
		}
	}
	tc := e.login()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tc.cmd("SELECT INBOX").ok().has(fmt.Sprintf("%d EXISTS", n))
		if got := tc.cmd("FETCH 1:* (UID FLAGS)").ok().count(`\d+ FETCH`); got != n {
			b.Fatalf("%d FETCH responses", got)
		}
		tc.cmd("SEARCH UNSEEN").ok()
	}
}

// BenchmarkSearchHeader: SEARCH SUBJECT over 2,000 messages of 64 KiB each: a header search reads each message's
// header block, not the message.
func BenchmarkSearchHeader(b *testing.B) {
	e := newEnv(b, func(o *Options) { o.MaxMessageBytes = 1 << 20 })
	ctx := context.Background()
	const n = 2000
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("Subject: report %d\r\nFrom: a@example.org\r\n\r\n%s", i, strings.Repeat("body line of text\r\n", 64<<10/19))
		ref, err := e.st.Blobs().Put(ctx, strings.NewReader(msg))
		if err != nil {
			b.Fatal(err)
		}
		meta, _ := parseMetaBytes([]byte(msg))
		if _, err := e.st.Append(ctx, store.AppendRequest{MailboxID: e.inbox.ID, Blob: ref, InternalDate: time.Now(), Meta: meta}); err != nil {
			b.Fatal(err)
		}
	}
	tc := e.login()
	tc.cmd("SELECT INBOX").ok()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tc.cmd(`SEARCH SUBJECT "report 1999"`).ok().has(`SEARCH 2000`)
	}
}
