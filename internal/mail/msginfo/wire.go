package msginfo

import (
	"strconv"
	"strings"
)

// maxQuoted is the longest string written as a quoted string; longer ones are literals.
const maxQuoted = 1024

// emptyBody is written for a multipart without parts (RFC 9051 9 requires 1*body), as Dovecot does.
const emptyBody = `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0`

// AppendEnvelope appends the RFC 9051 7.5.2 envelope structure of e:
// "(" date SP subject SP from SP sender SP reply-to SP to SP cc SP bcc SP in-reply-to SP message-id ")".
func AppendEnvelope(dst []byte, e *Envelope) []byte {
	dst = append(dst, '(')
	dst = appendNString(dst, e.Date)
	dst = append(dst, ' ')
	dst = appendNString(dst, e.Subject)
	for _, l := range [][]Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
		dst = append(dst, ' ')
		dst = appendAddressList(dst, l)
	}
	dst = append(dst, ' ')
	dst = appendNString(dst, e.InReplyTo)
	dst = append(dst, ' ')
	dst = appendNString(dst, e.MessageID)
	return append(dst, ')')
}

// appendAddressList writes "(" 1*address ")" or NIL, with the group markers of RFC 9051 7.5.2:
// (NIL NIL "group name" NIL) before the members and (NIL NIL NIL NIL) after them.
func appendAddressList(dst []byte, l []Address) []byte {
	if len(l) == 0 {
		return append(dst, "NIL"...)
	}
	dst = append(dst, '(')
	group := ""
	for i := range l {
		a := &l[i]
		if a.Group != group {
			if group != "" {
				dst = append(dst, "(NIL NIL NIL NIL)"...)
			}
			if a.Group != "" {
				dst = append(dst, "(NIL NIL "...)
				dst = appendString(dst, a.Group)
				dst = append(dst, " NIL)"...)
			}
			group = a.Group
		}
		if a.IsGroupPlaceholder() {
			continue
		}
		dst = append(dst, '(')
		dst = appendNString(dst, a.Name)
		dst = append(dst, ' ')
		dst = appendNString(dst, a.Adl)
		dst = append(dst, ' ')
		dst = appendNString(dst, a.Mailbox)
		dst = append(dst, ' ')
		dst = appendNString(dst, a.Host)
		dst = append(dst, ')')
	}
	if group != "" {
		dst = append(dst, "(NIL NIL NIL NIL)"...)
	}
	return append(dst, ')')
}

// AppendBodyStructure appends the body structure of p in RFC 9051 7.5.2 syntax (the same as RFC 3501
// 7.4.2): the BODY form when extended is false, BODYSTRUCTURE (with extension data) when it is true.
//
// A text/* part without a charset parameter gets ("charset" "us-ascii") appended to its parameters, a
// part without Content-Transfer-Encoding "7bit", as Dovecot writes them.
func AppendBodyStructure(dst []byte, p *Part, extended bool) []byte {
	dst = append(dst, '(')
	if p.Multipart {
		return appendMultipart(dst, p, extended)
	}
	dst = appendString(dst, p.Type)
	dst = append(dst, ' ')
	dst = appendString(dst, p.Subtype)
	dst = append(dst, ' ')
	dst = appendParams(dst, p.Params, p.IsText())
	dst = append(dst, ' ')
	dst = appendNString(dst, p.ID)
	dst = append(dst, ' ')
	dst = appendNString(dst, p.Description)
	dst = append(dst, ' ')
	if p.Encoding == "" {
		dst = append(dst, `"7bit"`...)
	} else {
		dst = appendString(dst, p.Encoding)
	}
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, p.Size, 10)
	switch {
	case p.Message != nil:
		dst = append(dst, ' ')
		dst = AppendEnvelope(dst, &p.Message.Envelope)
		dst = append(dst, ' ')
		dst = AppendBodyStructure(dst, p.Message.Root, extended)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, p.Lines, 10)
	case p.IsText():
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, p.Lines, 10)
	}
	if extended {
		// body-ext-1part = body-fld-md5 [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc ...]]]
		dst = append(dst, ' ')
		dst = appendNString(dst, p.MD5)
		dst = appendExt(dst, p)
	}
	return append(dst, ')')
}

// appendMultipart writes a body-type-mpart after its opening parenthesis.
func appendMultipart(dst []byte, p *Part, extended bool) []byte {
	if len(p.Children) == 0 {
		dst = append(dst, emptyBody...)
		if extended {
			dst = append(dst, " NIL NIL NIL NIL"...)
		}
		dst = append(dst, ')')
	}
	for _, c := range p.Children {
		dst = AppendBodyStructure(dst, c, extended)
	}
	dst = append(dst, ' ')
	dst = appendString(dst, p.Subtype)
	if extended {
		// body-ext-mpart = body-fld-param [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc ...]]]
		dst = append(dst, ' ')
		dst = appendParams(dst, p.Params, false)
		dst = appendExt(dst, p)
	}
	return append(dst, ')')
}

// appendExt writes SP body-fld-dsp SP body-fld-lang SP body-fld-loc.
func appendExt(dst []byte, p *Part) []byte {
	dst = append(dst, ' ')
	if p.Disposition == "" {
		dst = append(dst, "NIL"...)
	} else {
		dst = append(dst, '(')
		dst = appendString(dst, p.Disposition)
		dst = append(dst, ' ')
		dst = appendParams(dst, p.DispParams, false)
		dst = append(dst, ')')
	}
	dst = append(dst, ' ')
	if len(p.Language) == 0 {
		dst = append(dst, "NIL"...)
	} else {
		dst = append(dst, '(')
		for i, l := range p.Language {
			if i > 0 {
				dst = append(dst, ' ')
			}
			dst = appendString(dst, l)
		}
		dst = append(dst, ')')
	}
	dst = append(dst, ' ')
	return appendNString(dst, p.Location)
}

// appendParams writes body-fld-param: "(" string SP string *(SP string SP string) ")" / nil. With
// defCharset a missing charset parameter is added (RFC 2045 5.2 default, as Dovecot writes it).
func appendParams(dst []byte, params [][2]string, defCharset bool) []byte {
	if defCharset {
		for _, kv := range params {
			if strings.EqualFold(kv[0], "charset") {
				defCharset = false
				break
			}
		}
	}
	if len(params) == 0 && !defCharset {
		return append(dst, "NIL"...)
	}
	dst = append(dst, '(')
	for i, kv := range params {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = appendString(dst, kv[0])
		dst = append(dst, ' ')
		dst = appendString(dst, kv[1])
	}
	if defCharset {
		if len(params) > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, `"charset" "us-ascii"`...)
	}
	return append(dst, ')')
}

// appendNString writes s as a string, or NIL when it is empty.
func appendNString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "NIL"...)
	}
	return appendString(dst, s)
}

// appendString writes s as a quoted string when it only holds 7-bit characters other than NUL, CR and LF
// (RFC 9051 9: quoted-specials escaped), else as a literal {n}\r\n (8-bit text, line breaks, long strings).
// NUL, which no IMAP string may contain, becomes 0x80 in a literal, as Dovecot does.
func appendString(dst []byte, s string) []byte {
	if len(s) <= maxQuoted && quotable(s) {
		dst = append(dst, '"')
		for i := 0; i < len(s); i++ {
			if c := s[i]; c == '"' || c == '\\' {
				dst = append(dst, '\\')
			}
			dst = append(dst, s[i])
		}
		return append(dst, '"')
	}
	dst = append(dst, '{')
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, "}\r\n"...)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 {
			c = 0x80
		}
		dst = append(dst, c)
	}
	return dst
}

func quotable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\r' || c == '\n' || c >= 0x80 {
			return false
		}
	}
	return true
}
