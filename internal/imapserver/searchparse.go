package imapserver

import (
	"strings"
	"time"
)

// searchKey is one node of a SEARCH program (RFC 9051 6.4.4).
type searchKey struct {
	op string // ALL, FLAG, UNFLAG, LARGER, SMALLER, BEFORE, ON, SINCE, SENT*, SAVED*, HEADER, BODY, TEXT,
	//            UID, SEQ, NOT, OR, AND, MODSEQ, OLDER, YOUNGER, RECENT, NEW, OLD, SAVEDATESUPPORTED
	flag  string
	num   uint64
	date  time.Time
	field string // HEADER field name (FROM, TO, ... map to HEADER too)
	value string
	set   seqSet
	kids  []*searchKey
}

// searchArgs is a parsed SEARCH: RETURN options (RFC 4731, RFC 5182), charset and the program.
type searchArgs struct {
	ret     []string // MIN MAX ALL COUNT SAVE; nil: no RETURN (old-style SEARCH response in IMAP4rev1)
	hasRet  bool
	charset string
	key     *searchKey
}

// searchArgs reads [RETURN (...)] [CHARSET astring] search-key *(SP search-key).
func (p *parser) searchArgs() searchArgs {
	var a searchArgs
	if p.has("RETURN ") {
		a.hasRet = true
		p.expect("(")
		for p.ok() && p.peek() != ')' {
			if len(a.ret) > 0 {
				p.sp()
			}
			switch w := p.word(); w {
			case "MIN", "MAX", "ALL", "COUNT", "SAVE":
				a.ret = append(a.ret, w)
			default:
				p.fail("unknown SEARCH return option %s", w)
			}
		}
		p.expect(")")
		p.sp()
	}
	if p.has("CHARSET ") {
		a.charset = strings.ToUpper(p.astring())
		p.sp()
	}
	a.key = &searchKey{op: "AND"}
	for p.ok() {
		a.key.kids = append(a.key.kids, p.searchKey(0))
		if p.atEnd() {
			break
		}
		p.sp()
	}
	return a
}

// searchKey reads one key; depth bounds nesting so a hostile command cannot exhaust the stack.
func (p *parser) searchKey(depth int) *searchKey {
	if depth > 50 {
		p.fail("search program nested too deeply")
		return nil
	}
	if p.err != nil {
		return nil
	}
	if p.has("(") {
		k := &searchKey{op: "AND"}
		for p.ok() && p.peek() != ')' {
			if len(k.kids) > 0 {
				p.sp()
			}
			k.kids = append(k.kids, p.searchKey(depth+1))
		}
		p.expect(")")
		return k
	}
	if c := p.peek(); isDigit(c) || c == '*' || c == '$' {
		return &searchKey{op: "SEQ", set: p.seqSet()}
	}
	w := p.word()
	flagKey := func(flag string, set bool) *searchKey {
		if set {
			return &searchKey{op: "FLAG", flag: flag}
		}
		return &searchKey{op: "UNFLAG", flag: flag}
	}
	arg := func() { p.sp() }
	switch w {
	case "ALL":
		return &searchKey{op: "ALL"}
	case "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN":
		return flagKey(canonicalFlag(`\`+w), true)
	case "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN":
		return flagKey(canonicalFlag(`\`+w[2:]), false)
	case "KEYWORD", "UNKEYWORD":
		arg()
		return flagKey(p.flag(), w == "KEYWORD")
	case "RECENT", "NEW", "OLD", "SAVEDATESUPPORTED":
		return &searchKey{op: w}
	case "BCC", "CC", "FROM", "SUBJECT", "TO":
		arg()
		return &searchKey{op: "HEADER", field: w, value: p.astring()}
	case "HEADER":
		arg()
		f := p.astring()
		arg()
		return &searchKey{op: "HEADER", field: strings.ToUpper(f), value: p.astring()}
	case "BODY", "TEXT":
		arg()
		return &searchKey{op: w, value: p.astring()}
	case "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE", "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE":
		arg()
		return &searchKey{op: w, date: p.date()}
	case "LARGER", "SMALLER":
		arg()
		return &searchKey{op: w, num: p.number64()}
	case "OLDER", "YOUNGER": // RFC 5032 WITHIN
		arg()
		return &searchKey{op: w, num: uint64(p.nzNumber())}
	case "UID":
		arg()
		return &searchKey{op: "UID", set: p.seqSet()}
	case "NOT":
		arg()
		return &searchKey{op: "NOT", kids: []*searchKey{p.searchKey(depth + 1)}}
	case "OR":
		arg()
		a := p.searchKey(depth + 1)
		arg()
		b := p.searchKey(depth + 1)
		return &searchKey{op: "OR", kids: []*searchKey{a, b}}
	case "MODSEQ": // RFC 7162 3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer
		arg()
		if p.peek() == '"' {
			p.quoted()
			p.sp()
			p.word()
			p.sp()
		}
		return &searchKey{op: "MODSEQ", num: p.number64()}
	}
	if p.ok() {
		p.fail("unknown search key %s", w)
	}
	return nil
}

// usesModSeq reports whether the program has a MODSEQ key (the response then carries the highest mod-sequence).
func (k *searchKey) usesModSeq() bool {
	if k == nil {
		return false
	}
	if k.op == "MODSEQ" {
		return true
	}
	for _, c := range k.kids {
		if c.usesModSeq() {
			return true
		}
	}
	return false
}

// needsContent reports whether evaluating the key reads the message (header, body or Date:).
func (k *searchKey) needsContent() bool {
	if k == nil {
		return false
	}
	switch k.op {
	case "HEADER", "BODY", "TEXT", "SENTBEFORE", "SENTON", "SENTSINCE":
		return true
	}
	for _, c := range k.kids {
		if c.needsContent() {
			return true
		}
	}
	return false
}
