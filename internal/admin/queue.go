package admin

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/postern/postern/internal/store"
)

// maxShownHeader caps the message header `queue show` prints.
const maxShownHeader = 64 << 10

// QueueHeader returns the header of a queued message (up to the blank line that ends it, at most 64 KiB).
func (a *Admin) QueueHeader(ctx context.Context, m store.OutboundMessage) (string, error) {
	r, err := a.st.Blobs().Open(ctx, m.BlobID)
	if err != nil {
		return "", fmt.Errorf("queue id %s: open message: %w", m.ID, err)
	}
	defer r.Close()
	br := bufio.NewReader(io.LimitReader(r, maxShownHeader))
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		if line == "\r\n" || line == "\n" {
			break
		}
		b.WriteString(strings.TrimRight(line, "\r\n"))
		if line != "" {
			b.WriteByte('\n')
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return b.String(), fmt.Errorf("queue id %s: read message: %w", m.ID, err)
		}
	}
	return b.String(), nil
}

// WriteQueueList prints one tab-separated line per queue entry, oldest first: ID, age, size in bytes, <sender>,
// the recipients with their status ("bob@example.net (queued), carol@example.net (sent)"), attempts, next
// attempt and last error ("-" for none). Nothing is printed for an empty queue.
func WriteQueueList(w io.Writer, q []store.OutboundMessage, now time.Time) error {
	for _, m := range q {
		var rc []string
		for _, r := range m.Recipients {
			rc = append(rc, fmt.Sprintf("%s (%s)", r.Address, recipientState(r)))
		}
		if _, err := fmt.Fprintf(w, "%s\t%s\t%d\t<%s>\t%s\t%d\t%s\t%s\n", m.ID, age(now.Sub(m.CreatedAt)), m.Size, m.From,
			strings.Join(rc, ", "), m.Attempts, nextAttempt(m, now), orDash(oneLine(m.LastError))); err != nil {
			return err
		}
	}
	return nil
}

// WriteQueueEntry prints one entry for `queue show`: its fields, one line per recipient, then the message header.
func WriteQueueEntry(w io.Writer, m store.OutboundMessage, header string, now time.Time) error {
	bw := bufio.NewWriter(w)
	f := func(k, v string) { fmt.Fprintf(bw, "%-13s %s\n", k+":", v) }
	f("Queue-ID", m.ID)
	f("Arrived", fmt.Sprintf("%s (%s ago)", m.CreatedAt.UTC().Format(time.RFC3339), age(now.Sub(m.CreatedAt))))
	f("Size", fmt.Sprint(m.Size))
	f("Sender", "<"+m.From+">")
	if m.AuthUser != "" {
		f("Submitted-By", m.AuthUser)
	}
	if m.Ret != "" || m.EnvID != "" {
		f("DSN", strings.TrimSpace("RET="+orDash(m.Ret)+" ENVID="+orDash(m.EnvID)))
	}
	if m.RequireTLS {
		f("REQUIRETLS", "yes")
	}
	f("Attempts", fmt.Sprint(m.Attempts))
	f("Next-Attempt", nextAttempt(m, now))
	f("Last-Error", orDash(oneLine(m.LastError)))
	for _, r := range m.Recipients {
		line := r.Address + " (" + recipientState(r) + ")"
		if r.Error != "" {
			line += ": " + oneLine(r.Error)
		}
		if r.Remote != "" {
			line += " [" + r.Remote + "]"
		}
		f("Recipient", line)
	}
	bw.WriteString("\n")
	bw.WriteString(header)
	return bw.Flush()
}

// recipientState is the status, with a DSN still owed noted.
func recipientState(r store.OutboundRecipient) string {
	s := r.Status
	if s == "" {
		s = "queued"
	}
	if r.Notice != nil {
		s += ", DSN pending"
	}
	return s
}

func nextAttempt(m store.OutboundMessage, now time.Time) string {
	switch {
	case m.LeaseUntil.After(now):
		return "sending now"
	case !m.NextAttempt.After(now):
		return "due"
	}
	return fmt.Sprintf("in %s (%s)", age(m.NextAttempt.Sub(now)), m.NextAttempt.UTC().Format(time.RFC3339))
}

// age prints a duration the way an admin reads it: 45s, 12m, 3h4m, 2d3h.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a remote reply on one line of output.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
