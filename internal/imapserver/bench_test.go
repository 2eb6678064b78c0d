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
