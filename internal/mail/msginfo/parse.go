package msginfo

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// Parser limits. Beyond them the message is still parsed to the end, with less structure.
const (
	maxDepth    = 100       // nested multiparts and messages split (Dovecot's mail_max_nested_mime_parts)
	maxParts    = 10000     // parts created per message; further parts are folded into their parent
	maxFieldLen = 256 << 10 // header field value kept (a longer one is truncated)
	readBufSize = 64 << 10  // bufio buffer; also the longest line examined for a boundary
	minBufSize  = 4 << 10   // buffer for a message of known small size
	maxBoundary = 1000      // longer boundary parameters are ignored (RFC 2046 5.1.1 allows 70)
	blankDash   = "\n-"     // a line starting with '-' may be a boundary delimiter line
)

// parser is a single forward pass over the message, one line (or one buffer-sized chunk of a long line)
// at a time. Leaf bodies are skipped in bulk straight from the bufio buffer.
type parser struct {
	br      *bufio.Reader
	line    []byte // current chunk, valid until the next read
	off     int64  // offset of line[0] in the message
	atStart bool   // line starts a line of the message
	eof     bool
	err     error
	prevEOL int   // length of the line break ending the last consumed chunk, 0 if none
	last    byte  // last consumed byte
	nl      int64 // '\n' consumed so far
	bounds  [][]byte
	parts   int
	field   []byte // value of the header field being read
}

// Parse reads a whole RFC 5322 message and returns its Info. It never fails on malformed mail (best effort,
// like Dovecot); it returns an error only when r fails. Offsets and sizes refer to exactly the bytes read,
// so parse the bytes as they are stored.
func Parse(r io.Reader) (*Info, error) {
	size := readBufSize
	if l, ok := r.(interface{ Len() int }); ok {
		size = max(minBufSize, min(size, l.Len()+1)) // small messages need no 64 KiB buffer
	}
	p := &parser{br: bufio.NewReaderSize(r, size), atStart: true}
	p.fill()
	info := &Info{Root: &Part{}}
	p.parts = 1
	h := p.parsePart(info.Root, false, 0)
	if p.err != nil {
		return nil, p.err
	}
	info.Envelope = h.envelope()
	info.Sort = h.sortKeys(&info.Envelope)
	return info, nil
}

// fill reads the next chunk into p.line.
func (p *parser) fill() {
	if p.eof {
		p.line = nil
		return
	}
	line, err := p.br.ReadSlice('\n')
	switch {
	case err == nil || errors.Is(err, bufio.ErrBufferFull):
	case errors.Is(err, io.EOF):
		if len(line) == 0 {
			p.eof = true
		}
	default:
		p.err, p.eof, line = err, true, nil
	}
	p.line = line
}

// consume accounts for b, the bytes just consumed.
func (p *parser) consume(b []byte) {
	n := len(b)
	if n == 0 {
		return
	}
	p.off += int64(n)
	p.prevEOL = 0
	p.atStart = false
	if b[n-1] == '\n' {
		p.atStart = true
		p.prevEOL = 1
		if (n > 1 && b[n-2] == '\r') || (n == 1 && p.last == '\r') {
			p.prevEOL = 2
		}
	}
	p.nl += int64(bytes.Count(b, []byte{'\n'}))
	p.last = b[n-1]
}

// advance consumes the current chunk and reads the next.
func (p *parser) advance() {
	p.consume(p.line)
	p.fill()
}

// skipLine consumes the rest of the current line.
func (p *parser) skipLine() {
	p.advance()
	for !p.eof && !p.atStart {
		p.advance()
	}
}

// boundary reports whether the current chunk is a delimiter line of an open multipart: the index in
// p.bounds (-1 if none) and whether it is a close delimiter. RFC 2046 5.1.1: "--" boundary ["--"] LWSP
// CRLF. Like Dovecot, trailing garbage after the boundary is tolerated, but an exact match wins, and the
// innermost multipart is tried first.
func (p *parser) boundary() (idx int, closing bool) {
	l := p.line
	if !p.atStart || len(p.bounds) == 0 || len(l) < 3 || l[0] != '-' || l[1] != '-' {
		return -1, false
	}
	l = l[2:]
	idx = -1
	for i := len(p.bounds) - 1; i >= 0; i-- {
		b := p.bounds[i]
		if !bytes.HasPrefix(l, b) {
			continue
		}
		rest := l[len(b):]
		cl := bytes.HasPrefix(rest, []byte("--"))
		if cl {
			rest = rest[2:]
		}
		if len(bytes.TrimLeft(rest, " \t\r\n")) == 0 {
			return i, cl
		}
		if idx < 0 {
			idx, closing = i, cl
		}
	}
	return idx, closing
}

// parsePart parses a header and the body that follows, up to a boundary line of an enclosing multipart or
// the end of the message. depth counts the enclosing multiparts and messages.
func (p *parser) parsePart(pt *Part, digest bool, depth int) *header {
	pt.HeaderStart = p.off
	h := p.readHeader()
	pt.HeaderEnd, pt.BodyStart = p.off, p.off
	bnd := h.applyContent(pt, digest)
	nlStart := p.nl
	switch {
	case depth >= maxDepth || p.parts >= maxParts:
		p.skipBody()
	case bnd != "":
		pt.Multipart = true
		p.parseMultipart(pt, bnd, depth)
	case isMessageType(pt) && identityEncoding(pt.Encoding):
		pt.Message = &Info{Root: &Part{}}
		p.parts++
		mh := p.parsePart(pt.Message.Root, false, depth+1)
		pt.Message.Envelope = mh.envelope()
	default:
		p.skipBody()
	}
	pt.BodyEnd, pt.Lines = p.bodyEnd(pt.BodyStart, nlStart)
	pt.Size = pt.BodyEnd - pt.BodyStart
	if pt.Message != nil {
		p.clamp(pt.Message.Root, pt.BodyEnd)
	} else if n := len(pt.Children); n > 0 {
		p.clamp(pt.Children[n-1], pt.BodyEnd)
	}
	return h
}

// clamp moves the end of a last child (and of its own last descendants) back to end, the end of its
// parent, when the line break before the boundary line at p.off was counted in the child: a part that
// ends right at a boundary line without a line break of its own (an empty part after a delimiter line, a
// header cut by a boundary) shares that line break with the boundary.
func (p *parser) clamp(c *Part, end int64) {
	if c.BodyEnd <= end {
		return
	}
	if c.BodyStart < p.off && c.BodyEnd == p.off {
		c.Lines-- // the body held the '\n' at p.off-1
	}
	c.HeaderStart, c.HeaderEnd = min(c.HeaderStart, end), min(c.HeaderEnd, end)
	c.BodyStart, c.BodyEnd = min(c.BodyStart, end), end
	c.Size = c.BodyEnd - c.BodyStart
	if c.Message != nil {
		p.clamp(c.Message.Root, end)
	} else if n := len(c.Children); n > 0 {
		p.clamp(c.Children[n-1], end)
	}
}

// bodyEnd returns the end offset and the line count of a body that started at start, with nlStart line
// breaks before it. At a boundary line the preceding line break belongs to the boundary (RFC 2046 5.1.1).
func (p *parser) bodyEnd(start, nlStart int64) (end, lines int64) {
	end, nl := p.off, p.nl
	if !p.eof && p.prevEOL > 0 && nl > nlStart && end-int64(p.prevEOL) >= start {
		end -= int64(p.prevEOL)
		nl--
	}
	return end, nl - nlStart
}

// isMessageType reports whether p is an encapsulated message (RFC 2046 5.2.1, RFC 6532 3.7).
func isMessageType(p *Part) bool {
	return strings.EqualFold(p.Type, "message") &&
		(strings.EqualFold(p.Subtype, "rfc822") || strings.EqualFold(p.Subtype, "global"))
}

// identityEncoding reports whether a body in this encoding can be parsed in place.
func identityEncoding(enc string) bool {
	return enc == "" || strings.EqualFold(enc, "7bit") || strings.EqualFold(enc, "8bit") ||
		strings.EqualFold(enc, "binary")
}

// parseMultipart splits a multipart body at its boundary: preamble, parts, epilogue (RFC 2046 5.1.1). A
// missing close delimiter ends the multipart at the enclosing boundary or the end of the message.
func (p *parser) parseMultipart(pt *Part, bnd string, depth int) {
	p.bounds = append(p.bounds, []byte(bnd))
	own := len(p.bounds) - 1
	pt.Children = []*Part{}
	digest := strings.EqualFold(pt.Subtype, "digest")
	for !p.eof {
		i, closing := p.boundary()
		if i < 0 {
			p.advance() // preamble, or a part beyond maxParts
			continue
		}
		if i != own {
			break // an enclosing multipart's boundary: this one ends without its close delimiter
		}
		p.skipLine()
		if closing {
			p.bounds = p.bounds[:own]
			p.skipEpilogue()
			return
		}
		if p.parts >= maxParts {
			continue
		}
		child := &Part{}
		p.parts++
		pt.Children = append(pt.Children, child)
		p.parsePart(child, digest, depth+1)
	}
	p.bounds = p.bounds[:own]
}

// skipEpilogue skips to the next enclosing boundary line or the end.
func (p *parser) skipEpilogue() {
	for !p.eof {
		if i, _ := p.boundary(); i >= 0 {
			return
		}
		p.advance()
	}
}

// skipBody skips a leaf body. Whole lines that cannot be boundary lines are consumed in bulk from the
// read buffer, so a large attachment costs a few bytes.Index calls per buffer.
func (p *parser) skipBody() {
	for !p.eof {
		if i, _ := p.boundary(); i >= 0 {
			return
		}
		p.consume(p.line)
		p.bulk()
		p.fill()
	}
}

// bulk consumes buffered complete lines that do not start with '-' (only such a line can be a delimiter).
// Without open multiparts it consumes everything buffered.
func (p *parser) bulk() {
	for {
		n := p.br.Buffered()
		if n == 0 {
			return
		}
		buf, _ := p.br.Peek(n)
		take := n
		stop := false
		if len(p.bounds) > 0 {
			if !p.atStart || buf[0] == '-' {
				return
			}
			if k := bytes.Index(buf, []byte(blankDash)); k >= 0 {
				take, stop = k+1, true
			} else {
				take = bytes.LastIndexByte(buf, '\n') + 1
			}
		}
		if take == 0 {
			return
		}
		p.consume(buf[:take])
		_, _ = p.br.Discard(take) // cannot fail: take <= Buffered
		if stop {
			return
		}
	}
}

// readHeader reads header fields up to the empty line that ends them (consumed), a boundary line of an
// enclosing multipart (not consumed), or the end of the message.
func (p *parser) readHeader() *header {
	h := &header{}
	cur := -1 // index of the field being collected, -1 for an uninteresting one
	for !p.eof {
		l := p.line
		if p.atStart {
			if (len(l) == 1 && l[0] == '\n') || (len(l) == 2 && l[0] == '\r' && l[1] == '\n') {
				p.advance()
				break
			}
			if i, _ := p.boundary(); i >= 0 {
				break
			}
			if l[0] != ' ' && l[0] != '\t' {
				h.set(cur, p.field)
				cur, l = fieldStart(l)
				p.field = p.field[:0]
			}
		}
		if cur >= 0 && len(p.field) < maxFieldLen {
			l = l[:min(len(l), maxFieldLen-len(p.field))]
			p.field = append(p.field, l...)
		}
		p.advance()
	}
	h.set(cur, p.field)
	return h
}

// fieldStart returns the index of the field that starts on line l (-1 if not one we keep) and the value
// part of l after the colon.
func fieldStart(l []byte) (int, []byte) {
	colon := bytes.IndexByte(l, ':')
	if colon < 0 {
		return -1, nil
	}
	return fieldIndex(bytes.TrimRight(l[:colon], " \t")), l[colon+1:]
}
