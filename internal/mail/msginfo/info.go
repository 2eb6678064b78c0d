package msginfo

import (
	"errors"
	"strings"
	"time"
)

// Errors returned by the section helpers.
var (
	// ErrNoSuchPart is returned by SectionBytes and BinaryBytes for a part number that does not exist, and for
	// HEADER, HEADER.FIELDS[.NOT] and TEXT on a part that is not a message/rfc822 (RFC 9051 6.4.5), and MIME
	// on the whole message. An IMAP server answers it with an empty string, as Dovecot does.
	ErrNoSuchPart = errors.New("msginfo: no such message part")
	// ErrUnknownCTE is returned by BinaryBytes for a Content-Transfer-Encoding it cannot decode; RFC 3516 4.3
	// says to answer NO [UNKNOWN-CTE].
	ErrUnknownCTE = errors.New("msginfo: unknown content-transfer-encoding")
	// ErrBadSpecifier is returned by SectionBytes for a Specifier it does not know.
	ErrBadSpecifier = errors.New("msginfo: bad section specifier")
)

// MissingDomain and MissingMailbox fill an address that has no domain or no local part, as Dovecot does:
// "From: foo" gives (NIL NIL "foo" "MISSING_DOMAIN"). A NIL host would make the address read as a group
// start marker (RFC 9051 7.5.2), which is worse for clients than a visible placeholder.
const (
	MissingDomain  = "MISSING_DOMAIN"
	MissingMailbox = "MISSING_MAILBOX"
)

// Info is what IMAP needs to know about one message, computed once by Parse.
type Info struct {
	Envelope Envelope
	Root     *Part    // never nil after Parse or Unmarshal
	Sort     SortKeys // zero for an encapsulated message (Part.Message)
}

// Envelope holds the header values of RFC 9051 7.5.2 ENVELOPE. Strings are raw: unfolded, encoded-words
// NOT decoded (IMAP sends them as they are). "" is written as NIL.
type Envelope struct {
	Date, Subject, MessageID, InReplyTo string
	// Sender and ReplyTo are the From list when their header is absent or empty (RFC 9051 7.5.2). They may
	// share From's backing array: treat every list as read-only.
	From, Sender, ReplyTo, To, Cc, Bcc []Address
}

// Address is one address of an envelope address list, raw (encoded-words not decoded).
//
// Group syntax (RFC 5322 3.4, RFC 9051 7.5.2): every member of a group carries the group's display name in
// Group; an empty group ("undisclosed-recipients:;") is one Address with only Group set. AppendEnvelope
// writes the (NIL NIL "name" NIL) ... (NIL NIL NIL NIL) markers around consecutive members of one group.
type Address struct {
	Name    string // display name, quoted-string unquoted; or the comment when there is no display name
	Adl     string // obsolete source route "@a,@b", usually ""
	Mailbox string // local part, quoting removed (RFC 3501 7.4.2); MissingMailbox when absent
	Host    string // domain; MissingDomain when absent
	Group   string // display name of the enclosing group, "" outside groups
}

// IsGroupPlaceholder reports whether a only stands for an empty group.
func (a *Address) IsGroupPlaceholder() bool {
	return a.Group != "" && a.Name == "" && a.Adl == "" && a.Mailbox == "" && a.Host == ""
}

// Addr returns mailbox@host (or just the mailbox when there is no host).
func (a *Address) Addr() string {
	if a.Host == "" {
		return a.Mailbox
	}
	return a.Mailbox + "@" + a.Host
}

// Part is one node of the MIME tree (RFC 9051 7.5.2 BODYSTRUCTURE) with its byte offsets in the whole
// stored message: msg[HeaderStart:HeaderEnd] is its header including the empty line that ends it (the
// MIME header for BODY[n.MIME]); msg[BodyStart:BodyEnd] is its body, without the line break that
// precedes the next boundary line (RFC 2046 5.1.1: that CRLF belongs to the boundary).
type Part struct {
	// Type and Subtype keep the case of the message. A part without Content-Type (or with an invalid one)
	// is text/plain (RFC 2045 5.2), inside multipart/digest message/rfc822 (RFC 2046 5.1.5).
	Type, Subtype string
	Params        [][2]string // Content-Type parameters in order, RFC 2231 continuations joined
	ID            string      // Content-ID, raw
	Description   string      // Content-Description, raw
	Encoding      string      // Content-Transfer-Encoding token as given; "" means 7bit
	MD5           string      // Content-MD5
	Disposition   string      // Content-Disposition type, "" = NIL
	DispParams    [][2]string
	Language      []string // Content-Language tags
	Location      string   // Content-Location

	Size  int64 // body octets (BodyEnd-BodyStart), as stored
	Lines int64 // line breaks in the body; written for text/* and message/rfc822

	// Multipart is true for a multipart split at its boundary. Children are its parts; none were found when
	// empty (written as one empty text/plain part, as Dovecot does). A multipart/* without a boundary
	// parameter, or nested deeper than the parser's limit, is a leaf with Multipart false.
	Multipart bool
	Children  []*Part
	// Message is the encapsulated message of a message/rfc822 or message/global part whose
	// Content-Transfer-Encoding is 7bit, 8bit or binary (RFC 2046 5.2.1); nil otherwise.
	Message *Info

	HeaderStart, HeaderEnd, BodyStart, BodyEnd int64
}

// IsText reports whether p is text/*.
func (p *Part) IsText() bool { return strings.EqualFold(p.Type, "text") }

// Param returns the value of the Content-Type parameter name (case-insensitive), or "".
func (p *Part) Param(name string) string {
	for _, kv := range p.Params {
		if strings.EqualFold(kv[0], name) {
			return kv[1]
		}
	}
	return ""
}

// SortKeys are the values SORT (RFC 5256, RFC 5957) and THREAD (RFC 5256) compare, computed once.
type SortKeys struct {
	// Date is the parsed Date: header; zero when missing or unparsable (SORT falls back to INTERNALDATE).
	Date time.Time
	// Subject is the RFC 5256 2.1 base subject, decoded and upper-cased. SubjectReply tells that the
	// extraction removed a Re:/Fwd:/(fwd)/[fwd: ...] (a reply or forward, RFC 5256 ORDEREDSUBJECT).
	Subject      string
	SubjectReply bool
	// From, To and Cc are the addr-mailbox (local part) of the first address, upper-cased (RFC 5256 3).
	From, To, Cc string
	// DisplayFrom and DisplayTo are the RFC 5957 display names: the decoded display name of the first
	// address, or its mailbox@host when it has none. Case is kept.
	DisplayFrom, DisplayTo string
	// MessageID, InReplyTo and References are msg-ids without angle brackets, for the RFC 5256 REFERENCES
	// algorithm: InReplyTo is the first valid msg-id of In-Reply-To, References every valid msg-id of
	// References in order.
	MessageID, InReplyTo string
	References           []string
}

// Size returns the size of the whole message.
func (i *Info) Size() int64 { return i.Root.BodyEnd }

// FindPart resolves a part number (RFC 9051 6.4.5): in a message whose body is not multipart, part 1 is
// its body; the subparts of a message/rfc822 part are numbered inside its encapsulated message. An empty
// path returns the root part. It returns nil when there is no such part.
func (i *Info) FindPart(path []int) *Part {
	p := i.Root
	if len(path) == 0 {
		return p
	}
	msg := i // message whose part numbers apply at the current level, nil if p is not a message
	for n, num := range path {
		if n > 0 {
			msg = p.Message
		}
		switch {
		case msg != nil && !msg.Root.Multipart:
			if num != 1 {
				return nil
			}
			p = msg.Root
		case msg != nil:
			p = msg.Root
			fallthrough
		default:
			if !p.Multipart || num < 1 || num > len(p.Children) {
				return nil
			}
			p = p.Children[num-1]
		}
	}
	return p
}
