package imapserver

import (
	"strconv"
	"strings"
)

// fetchKind classifies a FETCH item.
type fetchKind int

const (
	fFlags fetchKind = iota
	fUID
	fInternalDate
	fSize
	fEnvelope
	fBody          // BODY (non-extensible BODYSTRUCTURE)
	fBodyStructure // BODYSTRUCTURE
	fModSeq
	fSaveDate
	fSection    // BODY[...] / BODY.PEEK[...] / RFC822 / RFC822.HEADER / RFC822.TEXT
	fBinary     // BINARY[...] / BINARY.PEEK[...]
	fBinarySize // BINARY.SIZE[...]
)

// sectionSpec is a body section (RFC 9051 6.4.5): part path, then "", HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT,
// TEXT or MIME.
type sectionSpec struct {
	path      []int
	specifier string
	fields    []string
}

// fetchItem is one requested FETCH data item.
type fetchItem struct {
	kind    fetchKind
	label   string // the item name in the response, e.g. "BODY[HEADER.FIELDS (FROM)]<0>"
	section sectionSpec
	peek    bool  // does not set \Seen
	partial bool  // <offset.count>
	offset  int64 // partial origin
	count   int64 // partial length
}

// needsBody reports whether the item reads the message (blob or parsed structure).
func (it fetchItem) needsBody() bool {
	switch it.kind {
	case fEnvelope, fBody, fBodyStructure, fSection, fBinary, fBinarySize:
		return true
	}
	return false
}

// fetchArgs are a parsed FETCH: items and the CHANGEDSINCE / VANISHED modifiers (RFC 7162 3.1.4, 3.2.6).
type fetchArgs struct {
	items        []fetchItem
	changedSince uint64
	hasChanged   bool
	vanished     bool
}

// fetchArgs reads ("ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")") [SP modifiers].
func (p *parser) fetchArgs() fetchArgs {
	var a fetchArgs
	switch {
	case p.has("("):
		for p.ok() && p.peek() != ')' {
			if len(a.items) > 0 {
				p.sp()
			}
			a.items = append(a.items, p.fetchAtt()...)
		}
		p.expect(")")
	default:
		a.items = p.fetchAtt()
	}
	if p.ok() && p.peek() == ' ' {
		p.sp()
		p.expect("(")
		for p.ok() && p.peek() != ')' {
			switch w := p.word(); w {
			case "CHANGEDSINCE":
				p.sp()
				a.changedSince, a.hasChanged = p.number64(), true
			case "VANISHED":
				a.vanished = true
			default:
				p.fail("unknown FETCH modifier %s", w)
			}
			if p.peek() == ' ' {
				p.sp()
			}
		}
		p.expect(")")
	}
	if p.ok() && len(a.items) == 0 {
		p.fail("FETCH needs at least one item")
	}
	return a
}

// fetchAtt reads one fetch-att (or a macro).
func (p *parser) fetchAtt() []fetchItem {
	w := p.take(func(c byte) bool {
		return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || isDigit(c) || c == '.'
	}, "FETCH item")
	w = strings.ToUpper(w)
	simple := func(k fetchKind) []fetchItem { return []fetchItem{{kind: k, label: w}} }
	switch w {
	case "ALL":
		return []fetchItem{{kind: fFlags, label: "FLAGS"}, {kind: fInternalDate, label: "INTERNALDATE"},
			{kind: fSize, label: "RFC822.SIZE"}, {kind: fEnvelope, label: "ENVELOPE"}}
	case "FAST":
		return []fetchItem{{kind: fFlags, label: "FLAGS"}, {kind: fInternalDate, label: "INTERNALDATE"},
			{kind: fSize, label: "RFC822.SIZE"}}
	case "FULL":
		return []fetchItem{{kind: fFlags, label: "FLAGS"}, {kind: fInternalDate, label: "INTERNALDATE"},
			{kind: fSize, label: "RFC822.SIZE"}, {kind: fEnvelope, label: "ENVELOPE"}, {kind: fBody, label: "BODY"}}
	case "FLAGS":
		return simple(fFlags)
	case "UID":
		return simple(fUID)
	case "INTERNALDATE":
		return simple(fInternalDate)
	case "RFC822.SIZE":
		return simple(fSize)
	case "ENVELOPE":
		return simple(fEnvelope)
	case "BODYSTRUCTURE":
		return simple(fBodyStructure)
	case "MODSEQ":
		return simple(fModSeq)
	case "SAVEDATE":
		return simple(fSaveDate)
	case "RFC822":
		return simple(fSection)
	case "RFC822.HEADER":
		return []fetchItem{{kind: fSection, label: w, peek: true, section: sectionSpec{specifier: "HEADER"}}}
	case "RFC822.TEXT":
		return []fetchItem{{kind: fSection, label: w, section: sectionSpec{specifier: "TEXT"}}}
	case "BODY", "BODY.PEEK":
		if p.peek() != '[' {
			if w == "BODY" {
				return simple(fBody)
			}
			p.fail("BODY.PEEK needs a section")
			return nil
		}
		it := fetchItem{kind: fSection, peek: w == "BODY.PEEK"}
		it.section = p.section(false)
		p.partial(&it)
		it.label = "BODY" + it.section.label() + it.partialLabel()
		return []fetchItem{it}
	case "BINARY", "BINARY.PEEK", "BINARY.SIZE":
		it := fetchItem{kind: fBinary, peek: w == "BINARY.PEEK"}
		if w == "BINARY.SIZE" {
			it.kind = fBinarySize
		}
		it.section = p.section(true)
		if it.kind != fBinarySize {
			p.partial(&it)
		}
		name := "BINARY"
		if it.kind == fBinarySize {
			name = "BINARY.SIZE"
		}
		it.label = name + it.section.label() + it.partialLabel()
		return []fetchItem{it}
	}
	if p.ok() {
		p.fail("unknown FETCH item %s", w)
	}
	return nil
}

// section reads "[" section-spec "]"; binary allows only a part path (RFC 3516 section-binary).
func (p *parser) section(binary bool) sectionSpec {
	var s sectionSpec
	p.expect("[")
	for p.ok() && isDigit(p.peek()) {
		n := p.nzNumber()
		s.path = append(s.path, int(n))
		if len(s.path) > 100 {
			p.fail("section path too deep")
		}
		if !p.has(".") {
			break
		}
		if !isDigit(p.peek()) {
			break // a specifier follows
		}
	}
	if p.ok() && p.peek() != ']' {
		if binary {
			p.fail("BINARY takes only a part number")
			return s
		}
		w := p.word()
		switch w {
		case "HEADER", "TEXT":
		case "MIME":
			if len(s.path) == 0 {
				p.fail("MIME needs a part number")
			}
		case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
			p.sp()
			p.expect("(")
			for p.ok() && p.peek() != ')' {
				if len(s.fields) > 0 {
					p.sp()
				}
				s.fields = append(s.fields, strings.ToUpper(p.astring()))
			}
			p.expect(")")
			if p.ok() && len(s.fields) == 0 {
				p.fail("empty header field list")
			}
		default:
			p.fail("unknown section %s", w)
		}
		s.specifier = w
	}
	p.expect("]")
	return s
}

// partial reads an optional "<" number "." nz-number ">".
func (p *parser) partial(it *fetchItem) {
	if !p.has("<") {
		return
	}
	it.partial = true
	it.offset = int64(p.number())
	p.expect(".")
	it.count = int64(p.nzNumber())
	p.expect(">")
}

// label writes the section as it appears in the response.
func (s sectionSpec) label() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, n := range s.path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(n))
	}
	if s.specifier != "" {
		if len(s.path) > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.specifier)
	}
	if len(s.fields) > 0 {
		b.WriteString(" (")
		for i, f := range s.fields {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.Write(appendAstring(nil, f, false))
		}
		b.WriteByte(')')
	}
	b.WriteByte(']')
	return b.String()
}

// partialLabel is "<origin>" in the response (RFC 9051 7.5.2: only the origin is echoed).
func (it fetchItem) partialLabel() string {
	if !it.partial {
		return ""
	}
	return "<" + strconv.FormatInt(it.offset, 10) + ">"
}
