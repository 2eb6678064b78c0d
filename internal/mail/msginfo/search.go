package msginfo

import (
	"bytes"
	"io"
	"strings"
	"unicode/utf8"
)

// SEARCH helpers (RFC 9051 6.4.4): case-insensitive substring matching on text decoded to UTF-8 (RFC 2047
// encoded-words in headers; Content-Transfer-Encoding and the charset parameter in bodies). The needle is
// UTF-8. Case-insensitivity is Unicode simple lower-casing.

// HeaderContains reports whether a field named field of the message header contains needle once unfolded
// and decoded. With field "" any field matches, name included ("Subject: text"). An empty needle matches any message that has the field (RFC
// 9051 6.4.4 HEADER).
func HeaderContains(msg []byte, i *Info, field, needle string) bool {
	h := span(msg, i.Root.HeaderStart, i.Root.HeaderEnd)
	n := strings.ToLower(needle)
	found := false
	eachField(h, func(name, whole []byte) bool {
		if field != "" && (len(name) != len(field) || !equalFoldASCII(name, field)) {
			return true
		}
		if n == "" {
			found = true
			return false
		}
		value := whole
		if colon := bytes.IndexByte(whole, ':'); colon >= 0 {
			value = whole[colon+1:]
		}
		hay := decodeWords(unfold(value))
		if field == "" {
			hay = string(name) + ": " + hay
		}
		found = strings.Contains(strings.ToLower(hay), n)
		return !found
	})
	return found
}

// BodyContains reports whether the decoded text of a text/* part of the message (encapsulated messages
// included) contains needle. Other parts are not searched.
func BodyContains(msg []byte, i *Info, needle string) bool {
	n := []byte(strings.ToLower(needle))
	return walkText(msg, i.Root, func(text []byte) bool {
		return bytes.Contains(bytes.ToLower(text), n)
	})
}

// TextContains reports whether the message header or body contains needle (RFC 9051 6.4.4 TEXT).
func TextContains(msg []byte, i *Info, needle string) bool {
	return HeaderContains(msg, i, "", needle) || BodyContains(msg, i, needle)
}

// walkText calls fn with the UTF-8 text of every text/* part under p until fn returns true.
func walkText(msg []byte, p *Part, fn func([]byte) bool) bool {
	switch {
	case p.Message != nil:
		return walkText(msg, p.Message.Root, fn)
	case p.Multipart:
		for _, c := range p.Children {
			if walkText(msg, c, fn) {
				return true
			}
		}
		return false
	case p.IsText():
		return fn(PartText(msg, p))
	}
	return false
}

// PartText returns the content of part p of msg decoded to UTF-8: transfer encoding removed (an unknown
// one is left as it is) and charset converted (text still not valid UTF-8 then, e.g. 8-bit without or with
// an unknown charset, is taken as ISO-8859-1).
func PartText(msg []byte, p *Part) []byte {
	body := span(msg, p.BodyStart, p.BodyEnd)
	if dec, err := decodeCTE(body, p.Encoding); err == nil {
		body = dec
	}
	cs := strings.ToLower(strings.TrimSpace(p.Param("charset")))
	switch cs {
	case "", "us-ascii", "utf-8", "utf8", "ascii":
	default:
		if r, err := charsetReader(cs, bytes.NewReader(body)); err == nil {
			if out, err := io.ReadAll(r); err == nil {
				body = out
			}
		}
	}
	if !utf8.Valid(body) {
		body = latin1(body)
	}
	return body
}

// latin1 converts ISO-8859-1 to UTF-8; used for 8-bit text that is not valid in its declared charset.
func latin1(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/8)
	for _, c := range b {
		out = utf8.AppendRune(out, rune(c))
	}
	return out
}
