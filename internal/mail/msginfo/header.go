package msginfo

import (
	"sort"
	"strconv"
	"strings"
)

// Header fields the parser keeps (first occurrence wins, as in Dovecot).
const (
	fContentType = iota
	fContentTransferEncoding
	fContentID
	fContentDescription
	fContentMD5
	fContentDisposition
	fContentLanguage
	fContentLocation
	fDate
	fSubject
	fFrom
	fSender
	fReplyTo
	fTo
	fCc
	fBcc
	fInReplyTo
	fMessageID
	fReferences
	nFields
)

// fieldNames is indexed by the constants above; read-only.
var fieldNames = [nFields]string{
	"Content-Type", "Content-Transfer-Encoding", "Content-ID", "Content-Description", "Content-MD5",
	"Content-Disposition", "Content-Language", "Content-Location", "Date", "Subject", "From", "Sender",
	"Reply-To", "To", "Cc", "Bcc", "In-Reply-To", "Message-ID", "References",
}

// fieldIndex returns the index of a kept field name, -1 for any other.
func fieldIndex(name []byte) int {
	for i, n := range fieldNames {
		if len(n) == len(name) && equalFoldASCII(name, n) {
			return i
		}
	}
	return -1
}

func equalFoldASCII(b []byte, s string) bool {
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if c != d && lowerASCII(c) != lowerASCII(d) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// header holds the unfolded values of the kept fields of one header.
type header struct {
	vals [nFields]string
	seen [nFields]bool
}

func (h *header) set(i int, raw []byte) {
	if i < 0 || h.seen[i] {
		return
	}
	h.seen[i] = true
	h.vals[i] = unfold(raw)
}

// unfold removes the line breaks of a folded field value (RFC 5322 2.2.3: the whitespace that follows them
// stays) and trims surrounding whitespace. A stray CR or LF is removed too, so the value never needs a
// literal because of line breaks.
func unfold(b []byte) string {
	var out []byte
	for i := 0; i < len(b); i++ {
		if c := b[i]; c == '\r' || c == '\n' {
			if out == nil {
				out = append(make([]byte, 0, len(b)), b[:i]...)
			}
			continue
		}
		if out != nil {
			out = append(out, b[i])
		}
	}
	if out == nil {
		out = b
	}
	return strings.Trim(string(out), " \t")
}

// applyContent sets the Content-* data of pt and returns the boundary when pt is a multipart that can be
// split.
func (h *header) applyContent(pt *Part, digest bool) string {
	typ, sub, params, ok := parseContentType(h.vals[fContentType])
	if !ok {
		// RFC 2045 5.2 (absent or invalid), RFC 2046 5.1.5 (digest).
		typ, sub, params = "text", "plain", nil
		if digest {
			typ, sub = "message", "rfc822"
		}
	}
	pt.Type, pt.Subtype, pt.Params = typ, sub, params
	pt.Encoding = firstToken(h.vals[fContentTransferEncoding])
	pt.ID = h.vals[fContentID]
	pt.Description = h.vals[fContentDescription]
	pt.MD5 = h.vals[fContentMD5]
	pt.Location = h.vals[fContentLocation]
	if d := h.vals[fContentDisposition]; d != "" {
		semi := strings.IndexByte(d, ';')
		if semi < 0 {
			semi = len(d)
		}
		pt.Disposition = firstToken(d[:semi])
		if pt.Disposition != "" {
			pt.DispParams = parseParams(d[semi:])
		}
	}
	pt.Language = parseLanguage(h.vals[fContentLanguage])
	if !strings.EqualFold(typ, "multipart") {
		return ""
	}
	if b := pt.Param("boundary"); len(b) <= maxBoundary {
		return b
	}
	return ""
}

// firstToken returns the first token of s, without comments (e.g. "7bit (the default)").
func firstToken(s string) string {
	s = strings.TrimLeft(skipComments(s), " \t")
	if i := strings.IndexAny(s, " \t;"); i >= 0 {
		s = s[:i]
	}
	return s
}

// skipComments removes RFC 5322 comments outside quoted strings.
func skipComments(s string) string {
	if strings.IndexByte(s, '(') < 0 {
		return s
	}
	var b strings.Builder
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && (quoted || depth > 0) && i+1 < len(s):
			if depth == 0 {
				b.WriteByte(c)
				b.WriteByte(s[i+1])
			}
			i++
			continue
		case c == '"' && depth == 0:
			quoted = !quoted
		case c == '(' && !quoted:
			depth++
			continue
		case c == ')' && !quoted && depth > 0:
			depth--
			if depth == 0 {
				b.WriteByte(' ')
			}
			continue
		}
		if depth == 0 {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// isTokenChar reports whether c may appear in an RFC 2045 token.
func isTokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}

// parseContentType parses type "/" subtype *(";" parameter) (RFC 2045 5.1); ok is false when the value is
// absent or has no valid type/subtype.
func parseContentType(v string) (typ, sub string, params [][2]string, ok bool) {
	v = strings.TrimLeft(skipComments(v), " \t")
	i := 0
	for i < len(v) && isTokenChar(v[i]) {
		i++
	}
	typ = v[:i]
	j := i
	for j < len(v) && (v[j] == ' ' || v[j] == '\t') {
		j++
	}
	if typ == "" || j >= len(v) || v[j] != '/' {
		return "", "", nil, false
	}
	j++
	for j < len(v) && (v[j] == ' ' || v[j] == '\t') {
		j++
	}
	k := j
	for k < len(v) && isTokenChar(v[k]) {
		k++
	}
	sub = v[j:k]
	if sub == "" {
		return "", "", nil, false
	}
	return typ, sub, parseParams(v[k:]), true
}

// parseParams parses *(";" attribute "=" value) leniently: an unquoted value runs to the next ';', a
// malformed parameter is skipped. RFC 2231 continuations are joined (see joinRFC2231).
func parseParams(s string) [][2]string {
	var out [][2]string
	for {
		semi := strings.IndexByte(s, ';')
		if semi < 0 {
			break
		}
		s = strings.TrimLeft(s[semi+1:], " \t")
		i := 0
		for i < len(s) && isTokenChar(s[i]) {
			i++
		}
		name := s[:i]
		rest := strings.TrimLeft(s[i:], " \t")
		if name == "" || rest == "" || rest[0] != '=' {
			s = rest
			continue
		}
		rest = strings.TrimLeft(rest[1:], " \t")
		var val string
		if rest != "" && rest[0] == '"' {
			val, s = unquote(rest)
		} else {
			end := strings.IndexByte(rest, ';')
			if end < 0 {
				end = len(rest)
			}
			val, s = strings.TrimRight(rest[:end], " \t"), rest[end:]
		}
		out = append(out, [2]string{name, val})
	}
	return joinRFC2231(out)
}

// unquote reads a quoted-string at the start of s (an unterminated one runs to the end) and returns its
// content and the rest of s.
func unquote(s string) (string, string) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:]
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ""
}

// joinRFC2231 joins RFC 2231 parameter continuations (name*0, name*1*, ...) into one parameter, as
// Dovecot's rfc2231_parse does: "name" when no section is charset-encoded, else "name*" whose value keeps
// the charset”%XX form (unencoded sections are %-encoded). "name*" alone is kept as is.
func joinRFC2231(in [][2]string) [][2]string {
	type seg struct {
		n   int
		ext bool
		val string
	}
	var segs map[string][]seg
	var out [][2]string
	for _, kv := range in {
		name := kv[0]
		star := strings.IndexByte(name, '*')
		if star <= 0 {
			out = append(out, kv)
			continue
		}
		num, ext := name[star+1:], false
		if strings.HasSuffix(num, "*") {
			num, ext = num[:len(num)-1], true
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 {
			out = append(out, kv)
			continue
		}
		base := strings.ToLower(name[:star])
		if segs == nil {
			segs = map[string][]seg{}
		}
		if _, seen := segs[base]; !seen {
			out = append(out, [2]string{name[:star], "\x00"}) // placeholder, filled below
		}
		segs[base] = append(segs[base], seg{n, ext, kv[1]})
	}
	for i, kv := range out {
		if kv[1] != "\x00" {
			continue
		}
		ss := segs[strings.ToLower(kv[0])]
		sort.SliceStable(ss, func(a, b int) bool { return ss[a].n < ss[b].n })
		anyExt := false
		for _, s := range ss {
			anyExt = anyExt || s.ext
		}
		var b strings.Builder
		for _, s := range ss {
			if anyExt && !s.ext {
				b.WriteString(percentEncode(s.val))
			} else {
				b.WriteString(s.val)
			}
		}
		name := kv[0]
		if anyExt {
			name += "*"
		}
		out[i] = [2]string{name, b.String()}
	}
	return out
}

func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isTokenChar(c) && c != '*' && c != '\'' && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// parseLanguage splits a Content-Language list (RFC 3282 2).
func parseLanguage(v string) []string {
	v = skipComments(v)
	var out []string
	for _, tag := range strings.Split(v, ",") {
		if tag = strings.Trim(tag, " \t"); tag != "" {
			out = append(out, tag)
		}
	}
	return out
}

// envelope builds the RFC 9051 7.5.2 envelope of a message header.
func (h *header) envelope() Envelope {
	e := Envelope{
		Date:      h.vals[fDate],
		Subject:   h.vals[fSubject],
		MessageID: h.vals[fMessageID],
		InReplyTo: h.vals[fInReplyTo],
		From:      parseAddressList(h.vals[fFrom]),
		Sender:    parseAddressList(h.vals[fSender]),
		ReplyTo:   parseAddressList(h.vals[fReplyTo]),
		To:        parseAddressList(h.vals[fTo]),
		Cc:        parseAddressList(h.vals[fCc]),
		Bcc:       parseAddressList(h.vals[fBcc]),
	}
	if len(e.Sender) == 0 {
		e.Sender = e.From
	}
	if len(e.ReplyTo) == 0 {
		e.ReplyTo = e.From
	}
	return e
}
