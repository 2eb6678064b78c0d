package mail

import (
	"net/netip"
	"time"
)

// Recipient is one RCPT TO with its DSN parameters (RFC 3461 4.1, 4.2).
type Recipient struct {
	Addr   Address
	Notify []string // NEVER, SUCCESS, FAILURE, DELAY; nil when not given
	ORcpt  string   // ORCPT as given, e.g. "rfc822;bob@example.org"
}

// Envelope is what the SMTP session knows about one message besides its bytes.
type Envelope struct {
	QueueID    string
	From       Address // zero for the null reverse-path <>
	Recipients []Recipient
	ReceivedAt time.Time

	RemoteIP netip.Addr
	Helo     string
	AuthUser string // canonical address of the authenticated submitter; "" for unauthenticated (MX) mail
	TLS      bool

	BodyType string // "7BIT", "8BITMIME", "BINARYMIME" or ""
	SMTPUTF8 bool
	Size     int64  // SIZE= declared by the client, 0 when absent
	Ret      string // DSN RET: FULL or HDRS
	EnvID    string // DSN ENVID
	// RequireTLS is the REQUIRETLS MAIL parameter (RFC 8689 4.1): every hop must use verified TLS.
	RequireTLS bool
}
