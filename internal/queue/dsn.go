package queue

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/textproto"
	"strings"
	"time"

	"github.com/postern/postern/internal/outbound"
	"github.com/postern/postern/internal/store"
)

// DSN actions (RFC 3464 2.3.3).
const (
	actionFailed  = "failed"
	actionDelayed = "delayed"
	actionRelayed = "relayed"
)

// maxReturnedBody caps the original message returned in full; bigger ones are returned as headers only.
const maxReturnedBody = 10 << 20

// reportRecipient is one per-recipient block of a delivery status notification.
type reportRecipient struct {
	store.OutboundRecipient
	Action string
	Status string // RFC 3463 code, e.g. "5.1.1"
	// Diagnostic is the remote server's reply, "550 5.1.1 No such user"; Remote the host that gave it.
	Diagnostic string
}

// report is everything a DSN says.
type report struct {
	Hostname    string // Reporting-MTA
	QueueID     string
	To          string // the original envelope sender
	EnvID       string
	Arrival     time.Time
	Date        time.Time
	RetryUntil  time.Time // for delayed recipients
	ReturnFull  bool      // return the whole message (message/rfc822) instead of its header (text/rfc822-headers)
	Recipients  []reportRecipient
	Original    io.Reader // the queued message
	OriginalLen int64
}

// buildDSN writes a multipart/report delivery status notification (RFC 3464, RFC 6522): a human-readable part,
// the message/delivery-status part and the original message or its header.
func buildDSN(r report) ([]byte, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	human, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/plain; charset=utf-8"},
		"Content-Description": {"Notification"}})
	if err != nil {
		return nil, err
	}
	io.WriteString(human, humanText(r))
	status, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"message/delivery-status"},
		"Content-Description": {"Delivery report"}})
	if err != nil {
		return nil, err
	}
	io.WriteString(status, statusFields(r))
	if err := writeOriginal(mw, r); err != nil {
		return nil, err
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&out, "%s: %s\r\n", k, v) }
	h("From", "Mail Delivery System <MAILER-DAEMON@"+r.Hostname+">")
	h("To", "<"+r.To+">")
	h("Subject", subject(r))
	h("Date", r.Date.Format(time.RFC1123Z))
	h("Message-ID", "<"+randomID()+"."+r.QueueID+"@"+r.Hostname+">")
	h("Auto-Submitted", "auto-replied") // RFC 3834 5: automatic responses must not trigger more of them
	h("MIME-Version", "1.0")
	h("Content-Type", `multipart/report; report-type=delivery-status; boundary="`+mw.Boundary()+`"`)
	out.WriteString("\r\n")
	out.Write(body.Bytes())
	return out.Bytes(), nil
}

func subject(r report) string {
	worst := actionRelayed
	for _, rc := range r.Recipients {
		if rc.Action == actionFailed {
			worst = actionFailed
		} else if rc.Action == actionDelayed && worst != actionFailed {
			worst = actionDelayed
		}
	}
	switch worst {
	case actionFailed:
		return "Undelivered Mail Returned to Sender"
	case actionDelayed:
		return "Delayed Mail (still being retried)"
	}
	return "Successful Mail Delivery Report"
}

func humanText(r report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "This is the mail system at host %s.\r\n\r\n", r.Hostname)
	groups := []struct{ action, intro string }{
		{actionFailed, "I'm sorry to have to inform you that your message could not be delivered to one or more\r\n" +
			"recipients. The mail system's reasons are below.\r\n"},
		{actionDelayed, fmt.Sprintf("Your message could not be delivered yet to the recipients below. The mail system will\r\n"+
			"keep trying until %s; you do not need to send it again.\r\n", r.RetryUntil.UTC().Format(time.RFC1123))},
		{actionRelayed, "Your message was delivered to the mail system of the recipients below, which does not\r\n" +
			"report further delivery.\r\n"},
	}
	for _, g := range groups {
		first := true
		for _, rc := range r.Recipients {
			if rc.Action != g.action {
				continue
			}
			if first {
				b.WriteString(g.intro + "\r\n")
				first = false
			}
			fmt.Fprintf(&b, "<%s>: ", rc.Address)
			if diag := oneLine(rc.Diagnostic); rc.Remote != "" && diag != "" {
				fmt.Fprintf(&b, "host %s said: %s\r\n", rc.Remote, diag)
			} else if diag != "" {
				fmt.Fprintf(&b, "%s\r\n", diag)
			} else {
				b.WriteString("delivered\r\n")
			}
		}
		if !first {
			b.WriteString("\r\n")
		}
	}
	return b.String()
}

// statusFields is the message/delivery-status body: per-message fields, then one block per recipient
// (RFC 3464 2.2, 2.3).
func statusFields(r report) string {
	var b strings.Builder
	f := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, oneLine(v)) }
	f("Reporting-MTA", "dns; "+r.Hostname)
	f("X-Postern-Queue-ID", r.QueueID)
	if r.EnvID != "" {
		if env, err := outbound.DecodeXtext(r.EnvID); err == nil {
			f("Original-Envelope-Id", env)
		}
	}
	f("Arrival-Date", r.Arrival.Format(time.RFC1123Z))
	for _, rc := range r.Recipients {
		b.WriteString("\r\n")
		if typ, addr, ok := strings.Cut(rc.ORcpt, ";"); ok {
			if dec, err := outbound.DecodeXtext(addr); err == nil {
				f("Original-Recipient", strings.ToLower(typ)+"; "+dec)
			}
		}
		f("Final-Recipient", addressType(rc.Address)+"; "+rc.Address)
		f("Action", rc.Action)
		f("Status", rc.Status)
		if rc.Remote != "" {
			host, _, _ := strings.Cut(rc.Remote, "[")
			if host != "" {
				f("Remote-MTA", "dns; "+host)
			}
			if rc.Diagnostic != "" {
				f("Diagnostic-Code", "smtp; "+rc.Diagnostic)
			}
		}
		f("Last-Attempt-Date", r.Date.Format(time.RFC1123Z))
		if rc.Action == actionDelayed {
			f("Will-Retry-Until", r.RetryUntil.Format(time.RFC1123Z))
		}
	}
	return b.String()
}

// addressType is "rfc822", or "utf-8" for an internationalized address (RFC 6533 3).
func addressType(addr string) string {
	for i := 0; i < len(addr); i++ {
		if addr[i] >= 0x80 {
			return "utf-8"
		}
	}
	return "rfc822"
}

// writeOriginal adds the original message (RET=FULL, or no RET, for failures) or its header (RFC 3461 4.3).
func writeOriginal(mw *multipart.Writer, r report) error {
	if r.Original == nil {
		return nil
	}
	full := r.ReturnFull && r.OriginalLen <= maxReturnedBody
	ct := "text/rfc822-headers"
	if full {
		ct = "message/rfc822"
	}
	w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {ct}, "Content-Description": {"Undelivered message"}})
	if err != nil {
		return err
	}
	if full {
		_, err = io.Copy(w, r.Original)
		return err
	}
	br := bufio.NewReader(r.Original)
	for n := 0; n < 1<<20; {
		line, err := br.ReadString('\n')
		n += len(line)
		if line == "\r\n" || line == "\n" {
			break
		}
		io.WriteString(w, line)
		if err != nil {
			break
		}
	}
	return nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(strings.ReplaceAll(s, "\r", " "), "\n", " ")), " ")
}

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
