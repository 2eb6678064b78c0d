package msginfo

import (
	"io"
	"mime"
	netmail "net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

// sortKeys computes the SORT and THREAD keys of the top-level message.
func (h *header) sortKeys(e *Envelope) SortKeys {
	k := SortKeys{
		Date:       parseDate(h.vals[fDate]),
		MessageID:  firstMsgID(h.vals[fMessageID]),
		InReplyTo:  firstMsgID(h.vals[fInReplyTo]),
		References: msgIDs(h.vals[fReferences]),
	}
	base, reply := baseSubject(h.vals[fSubject])
	k.Subject, k.SubjectReply = strings.ToUpper(base), reply
	k.From, k.DisplayFrom = addrKeys(e.From)
	k.To, k.DisplayTo = addrKeys(e.To)
	k.Cc, _ = addrKeys(e.Cc)
	return k
}

// addrKeys returns the upper-cased addr-mailbox of the first address (RFC 5256 3) and its RFC 5957 display
// name: the decoded display name, or mailbox@host when there is none.
func addrKeys(l []Address) (mailbox, display string) {
	for i := range l {
		a := &l[i]
		if a.IsGroupPlaceholder() {
			continue
		}
		if display = strings.TrimSpace(decodeWords(a.Name)); display == "" {
			display = a.Addr()
		}
		return strings.ToUpper(a.Mailbox), display
	}
	return "", ""
}

// charsetReader converts a charset to UTF-8 with go-message's charset tables (which cover iso-8859-*,
// koi8-*, windows-*, the CJK charsets, ...).
func charsetReader(cs string, r io.Reader) (io.Reader, error) { return charset.Reader(cs, r) }

// decodeWords decodes RFC 2047 encoded-words; on failure (unknown charset, bad encoding) s is returned as
// it is. Raw 8-bit text that is not UTF-8 is taken as ISO-8859-1 (Latin-1 never fails), so the result is
// always valid UTF-8.
func decodeWords(s string) string {
	if strings.Contains(s, "=?") {
		d := mime.WordDecoder{CharsetReader: charsetReader}
		if out, err := d.DecodeHeader(s); err == nil {
			s = out
		}
	}
	if !utf8.ValidString(s) {
		s = string(latin1([]byte(s)))
	}
	return s
}

// parseDate parses an RFC 5322 3.3 date-time leniently (obsolete forms, comments, missing seconds or
// weekday); zero when it cannot.
func parseDate(s string) time.Time {
	s = strings.TrimSpace(skipComments(s))
	if s == "" {
		return time.Time{}
	}
	if t, err := netmail.ParseDate(s); err == nil {
		return t
	}
	for _, layout := range []string{
		"Mon, 2 Jan 2006 15:04:05 -0700 MST", "2 Jan 2006 15:04:05 -0700 MST", "Mon, 2 Jan 06 15:04:05 -0700",
		"Mon, 2 Jan 2006 15:04 -0700", "2 Jan 2006 15:04 -0700", "Mon, 2 Jan 2006 15:04:05",
		"2 Jan 2006 15:04:05", time.RFC3339, time.ANSIC, time.UnixDate,
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// msgIDs returns the msg-ids ("<" id-left "@" id-right ">", RFC 5322 3.6.4) of s without brackets and
// whitespace, in order; text between them is ignored.
func msgIDs(s string) []string {
	var out []string
	for {
		open := strings.IndexByte(s, '<')
		if open < 0 {
			return out
		}
		end := strings.IndexByte(s[open:], '>')
		if end < 0 {
			return out
		}
		id := strings.Join(strings.Fields(s[open+1:open+end]), "")
		s = s[open+end+1:]
		if id != "" && strings.IndexByte(id, '<') < 0 {
			out = append(out, id)
		}
	}
}

// firstMsgID returns the first msg-id of s; a Message-ID without angle brackets is taken as it is.
func firstMsgID(s string) string {
	if ids := msgIDs(s); len(ids) > 0 {
		return ids[0]
	}
	if f := strings.Fields(s); len(f) == 1 && strings.IndexByte(f[0], '@') > 0 {
		return f[0]
	}
	return ""
}

// BaseSubject returns the RFC 5256 2.1 base subject of a Subject header value (raw or decoded): encoded
// words decoded, whitespace collapsed, "Re:", "Fw:", "Fwd:" (with optional [blob]s), trailing "(fwd)" and
// "[fwd: ...]" wrappers removed. Case is kept; SortKeys.Subject is its upper-case form.
func BaseSubject(subject string) string {
	s, _ := baseSubject(subject)
	return s
}

// baseSubject implements RFC 5256 2.1 and reports whether it removed a reply/forward marker.
func baseSubject(subject string) (string, bool) {
	// (1) decode, tabs and continuations to space, runs of spaces to one.
	s := strings.Join(strings.FieldsFunc(decodeWords(subject), func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\r' || r == '\n'
	}), " ")
	reply := false
	for {
		// (2) remove trailing subj-trailer: "(fwd)" / WSP.
		for {
			t := strings.TrimRight(s, " ")
			if n := len(t); n >= 5 && strings.EqualFold(t[n-5:], "(fwd)") {
				t, reply = t[:n-5], true
			}
			if t == s {
				break
			}
			s = t
		}
		// (3)-(5) remove subj-leaders and subj-blobs.
		for {
			t := strings.TrimLeft(s, " ")
			if rest, ok := stripRefwd(t); ok {
				t, reply = rest, true
			} else if rest, ok := stripBlob(t); ok && strings.TrimLeft(rest, " ") != "" {
				t = rest
			}
			if t == s {
				break
			}
			s = t
		}
		// (6) "[fwd:" subject "]"
		if len(s) >= 6 && strings.EqualFold(s[:5], "[fwd:") && s[len(s)-1] == ']' {
			s, reply = s[5:len(s)-1], true
			continue
		}
		return s, reply
	}
}

// stripBlob removes a leading subj-blob: "[" *BLOBCHAR "]" *WSP.
func stripBlob(s string) (string, bool) {
	if s == "" || s[0] != '[' {
		return s, false
	}
	end := strings.IndexAny(s[1:], "[]")
	if end < 0 || s[1+end] != ']' {
		return s, false
	}
	return strings.TrimLeft(s[end+2:], " "), true
}

// stripRefwd removes a leading *subj-blob subj-refwd, where subj-refwd = ("re" / ("fw" ["d"])) *WSP
// [subj-blob] ":".
func stripRefwd(s string) (string, bool) {
	t := s
	for {
		rest, ok := stripBlob(t)
		if !ok {
			break
		}
		t = rest
	}
	switch {
	case len(t) >= 3 && strings.EqualFold(t[:3], "fwd"):
		t = t[3:]
	case len(t) >= 2 && (strings.EqualFold(t[:2], "re") || strings.EqualFold(t[:2], "fw")):
		t = t[2:]
	default:
		return s, false
	}
	t = strings.TrimLeft(t, " ")
	if rest, ok := stripBlob(t); ok {
		t = rest
	}
	if t == "" || t[0] != ':' {
		return s, false
	}
	return t[1:], true
}
