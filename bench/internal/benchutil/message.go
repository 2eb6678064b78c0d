package benchutil

import (
	"fmt"
	"strings"
	"time"
)

var words = strings.Fields(`mail server benchmark postfix dovecot postern queue delivery mailbox message header
body flags search append expunge store fetch select idle notify latency throughput durable fsync commit disk
memory connection session protocol client loopback report median ratio percentile`)

// Message returns a deterministic RFC 5322 message number i of about size bytes: a few headers, then lines of
// words, so header and text SEARCH have something to find ("topic N" in the subject, N = i%10).
func Message(i, size int, to string) []byte {
	var b strings.Builder
	date := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	fmt.Fprintf(&b, "From: Sender %d <sender%d@sender.test>\r\n", i%17, i%17)
	fmt.Fprintf(&b, "To: <%s>\r\n", to)
	fmt.Fprintf(&b, "Subject: bench message %d topic %d\r\n", i, i%10)
	fmt.Fprintf(&b, "Date: %s\r\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <bench-%d-%d@sender.test>\r\n", i, size)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	line := 0
	for b.Len() < size {
		for w := range 10 {
			if w > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[(i*7+line*3+w)%len(words)])
		}
		b.WriteString("\r\n")
		line++
	}
	return []byte(b.String())
}
