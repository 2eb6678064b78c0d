package msginfo

import (
	"bytes"
	"strings"
)

// Section is an RFC 9051 6.4.5 section-spec.
type Section struct {
	Path      []int    // part numbers, e.g. 1.2 -> []int{1, 2}; empty = the whole message
	Specifier string   // "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT" or "MIME" (any case)
	Fields    []string // field names for HEADER.FIELDS[.NOT]
}

// SectionBytes returns BODY[section] of msg, the whole stored message i was parsed from (RFC 9051 6.4.5):
//
//   - "" with an empty path is the whole message; with a part number the body of that part (for a
//     message/rfc822 part, the whole encapsulated message; for a multipart, its raw body).
//   - HEADER, HEADER.FIELDS[.NOT] and TEXT apply to the message (empty path) or to the message encapsulated
//     in a message/rfc822 part; on any other part they give ErrNoSuchPart.
//   - MIME is the part's own MIME header; ErrNoSuchPart on an empty path.
//
// The result is a sub-slice of msg (do not modify it), except for HEADER.FIELDS[.NOT], which builds the
// matching fields in their original order and form, followed by the empty line that ends the header.
// Partial fetches (<origin.octets>) are the caller's.
func (i *Info) SectionBytes(msg []byte, s Section) ([]byte, error) {
	p := i.FindPart(s.Path)
	if p == nil {
		return nil, ErrNoSuchPart
	}
	m := i // message whose HEADER and TEXT the specifier refers to
	if len(s.Path) > 0 {
		m = p.Message
	}
	switch strings.ToUpper(s.Specifier) {
	case "":
		if len(s.Path) == 0 {
			return msg, nil
		}
		return span(msg, p.BodyStart, p.BodyEnd), nil
	case "MIME":
		if len(s.Path) == 0 {
			return nil, ErrNoSuchPart
		}
		return span(msg, p.HeaderStart, p.HeaderEnd), nil
	case "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT":
	default:
		return nil, ErrBadSpecifier
	}
	if m == nil {
		return nil, ErrNoSuchPart
	}
	switch spec := strings.ToUpper(s.Specifier); spec {
	case "TEXT":
		return span(msg, m.Root.BodyStart, m.Root.BodyEnd), nil
	case "HEADER":
		return span(msg, m.Root.HeaderStart, m.Root.HeaderEnd), nil
	default:
		return filterHeader(span(msg, m.Root.HeaderStart, m.Root.HeaderEnd), s.Fields,
			spec == "HEADER.FIELDS.NOT"), nil
	}
}

// span returns msg[start:end], clamped to msg.
func span(msg []byte, start, end int64) []byte {
	n := int64(len(msg))
	start, end = max(0, min(start, n)), max(0, min(end, n))
	if end < start {
		end = start
	}
	return msg[start:end:end]
}

// eachField calls fn for every field of header h with the field's whole text (name, colon, value and
// folded lines, line breaks included) and its name. The empty line ending the header is not a field.
// fn returns false to stop.
func eachField(h []byte, fn func(name, whole []byte) bool) {
	for len(h) > 0 {
		if h[0] == '\n' || (h[0] == '\r' && len(h) > 1 && h[1] == '\n') {
			return
		}
		end := 0
		for {
			nl := bytes.IndexByte(h[end:], '\n')
			if nl < 0 {
				end = len(h)
				break
			}
			end += nl + 1
			if end >= len(h) || (h[end] != ' ' && h[end] != '\t') {
				break
			}
		}
		whole := h[:end]
		name := whole
		if colon := bytes.IndexByte(whole, ':'); colon >= 0 {
			name = bytes.TrimRight(whole[:colon], " \t")
		}
		if !fn(name, whole) {
			return
		}
		h = h[end:]
	}
}

// filterHeader returns the fields of h named (not) in names, then the header's ending empty line (CRLF
// when h has none).
func filterHeader(h []byte, names []string, not bool) []byte {
	var out []byte
	eachField(h, func(name, whole []byte) bool {
		match := false
		for _, n := range names {
			if len(n) == len(name) && equalFoldASCII(name, n) {
				match = true
				break
			}
		}
		if match != not {
			out = append(out, whole...)
		}
		return true
	})
	switch {
	case bytes.HasSuffix(h, []byte("\r\n\r\n")) || bytes.Equal(h, []byte("\r\n")):
		out = append(out, '\r', '\n')
	case bytes.HasSuffix(h, []byte("\n\n")) || bytes.Equal(h, []byte("\n")):
		out = append(out, '\n')
	default:
		out = append(out, '\r', '\n')
	}
	return out
}

// BinaryBytes returns BINARY[path] (RFC 3516 4.2): the content of a part with its
// Content-Transfer-Encoding removed. An empty path is the whole message, a multipart or message/rfc822
// part is returned as stored. base64 and quoted-printable are decoded leniently (invalid characters are
// skipped, as Dovecot does); 7bit, 8bit, binary and no encoding return the body itself; any other
// encoding gives ErrUnknownCTE.
func (i *Info) BinaryBytes(msg []byte, path []int) ([]byte, error) {
	if len(path) == 0 {
		return msg, nil
	}
	p := i.FindPart(path)
	if p == nil {
		return nil, ErrNoSuchPart
	}
	body := span(msg, p.BodyStart, p.BodyEnd)
	if p.Multipart || p.Message != nil {
		return body, nil
	}
	return decodeCTE(body, p.Encoding)
}

// decodeCTE removes a Content-Transfer-Encoding (RFC 2045 6).
func decodeCTE(body []byte, enc string) ([]byte, error) {
	switch {
	case identityEncoding(enc):
		return body, nil
	case strings.EqualFold(enc, "base64"):
		return decodeBase64(body), nil
	case strings.EqualFold(enc, "quoted-printable"):
		return decodeQP(body), nil
	}
	return nil, ErrUnknownCTE
}

// decodeBase64 decodes RFC 2045 6.8 base64, skipping characters outside the alphabet. Padding ends a
// quantum; decoding resumes after it (concatenated base64 blocks).
func decodeBase64(b []byte) []byte {
	out := make([]byte, 0, len(b)/4*3+3)
	var acc uint32
	n := 0
	flush := func() {
		switch n {
		case 2:
			out = append(out, byte(acc>>4))
		case 3:
			out = append(out, byte(acc>>10), byte(acc>>2))
		}
		acc, n = 0, 0
	}
	for _, c := range b {
		var v byte
		switch {
		case 'A' <= c && c <= 'Z':
			v = c - 'A'
		case 'a' <= c && c <= 'z':
			v = c - 'a' + 26
		case '0' <= c && c <= '9':
			v = c - '0' + 52
		case c == '+':
			v = 62
		case c == '/':
			v = 63
		case c == '=':
			flush()
			continue
		default:
			continue
		}
		acc = acc<<6 | uint32(v)
		if n++; n == 4 {
			out = append(out, byte(acc>>16), byte(acc>>8), byte(acc))
			acc, n = 0, 0
		}
	}
	flush()
	return out
}

// decodeQP decodes RFC 2045 6.7 quoted-printable leniently: trailing whitespace is removed, "=" at the
// end of a line is a soft line break, "=" not followed by two hex digits stays as it is. Hard line breaks
// are kept as they are stored (CRLF or LF).
func decodeQP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		line, eol := b, []byte(nil)
		if nl := bytes.IndexByte(b, '\n'); nl >= 0 {
			line, eol, b = b[:nl], b[nl:nl+1], b[nl+1:]
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line, eol = line[:len(line)-1], []byte("\r\n")
			}
		} else {
			b = nil
		}
		line = bytes.TrimRight(line, " \t")
		soft := len(line) > 0 && line[len(line)-1] == '='
		if soft {
			line = line[:len(line)-1]
		}
		for k := 0; k < len(line); k++ {
			c := line[k]
			if c == '=' && k+2 < len(line) && isHex(line[k+1]) && isHex(line[k+2]) {
				c = unhex(line[k+1])<<4 | unhex(line[k+2])
				k += 2
			}
			out = append(out, c)
		}
		if !soft {
			out = append(out, eol...)
		}
	}
	return out
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
