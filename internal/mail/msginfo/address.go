package msginfo

import "strings"

// Address list parsing (RFC 5322 3.4, with the obsolete forms of 4.4), raw and best effort: encoded-words
// stay encoded, nothing is rejected. Like Dovecot, a local part without "@domain" gets MissingDomain and an
// empty one MissingMailbox; text that is not an address at all becomes the mailbox.

// Token kinds; a special is its own character.
const (
	tkAtom    = 'a'
	tkQuoted  = 'q'
	tkComment = 'c'
	tkLiteral = 'l'
)

type token struct {
	kind  byte
	text  string // quoted-string and comment content unquoted; domain literal with its brackets
	space bool   // whitespace (or a comment) before the token
}

const addrSpecials = "<>:;@,\""

// tokenize splits an address list into tokens.
func tokenize(s string) []token {
	var toks []token
	space := false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			space = true
			i++
			continue
		case c == '"':
			j, text := scanDelimited(s, i, '"', '"')
			toks = append(toks, token{tkQuoted, text, space})
			i = j
		case c == '(':
			j, text := scanDelimited(s, i, '(', ')')
			toks = append(toks, token{tkComment, text, space})
			i = j
			space = true
			continue
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				j = len(s) - i - 1
			}
			toks = append(toks, token{tkLiteral, s[i : i+j+1], space})
			i += j + 1
		case strings.IndexByte(addrSpecials, c) >= 0:
			toks = append(toks, token{c, s[i : i+1], space})
			i++
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n\"()[<>:;@,", rune(s[j])) {
				j++
			}
			if j == i {
				j++ // a stray ')' or ']'
			}
			toks = append(toks, token{tkAtom, s[i:j], space})
			i = j
		}
		space = false
	}
	return toks
}

// scanDelimited reads a quoted-string (open == close) or a comment (nesting) starting at s[i] == open and
// returns the index after it and its content with quoted-pairs resolved. An unterminated one runs to the
// end.
func scanDelimited(s string, i int, open, closing byte) (int, string) {
	var b strings.Builder
	depth := 0
	for i++; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
			continue
		case c == closing && depth == 0:
			return i + 1, b.String()
		case c == closing:
			depth--
		case c == open && open != closing:
			depth++
		}
		b.WriteByte(c)
	}
	return i, b.String()
}

// addrList accumulates the addresses of one list.
type addrList struct {
	out     []Address
	group   string
	members int
}

func (l *addrList) add(a Address) {
	a.Group = l.group
	l.out = append(l.out, a)
	l.members++
}

func (l *addrList) endGroup() {
	if l.group != "" && l.members == 0 {
		l.out = append(l.out, Address{Group: l.group})
	}
	l.group, l.members = "", 0
}

// parseAddressList parses an address-list or mailbox-list header value.
func parseAddressList(s string) []Address {
	toks := tokenize(s)
	if len(toks) == 0 {
		return nil
	}
	var l addrList
	var cur []token // words of the current entry
	comment := ""   // its last comment
	done := false   // the entry ended with an angle-addr; ignore the rest up to ',' or ';'
	flush := func() {
		if !done && len(cur) > 0 {
			a := addrSpec(cur)
			a.Name = comment
			l.add(a)
		}
		cur, comment, done = cur[:0], "", false
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.kind == tkComment:
			comment = t.text
			if done && l.out[len(l.out)-1].Name == "" {
				l.out[len(l.out)-1].Name = comment
			}
		case t.kind == ',':
			flush()
		case t.kind == ';':
			flush()
			l.endGroup()
		case done:
		case t.kind == ':' && l.group == "" && len(cur) > 0 && !hasKind(cur, '@'):
			l.group, l.members = phrase(cur), 0
			cur, comment = cur[:0], ""
		case t.kind == '<':
			j := i + 1
			for j < len(toks) && toks[j].kind != '>' {
				j++
			}
			a := angleAddr(toks[i+1 : j])
			if a.Name = phrase(cur); a.Name == "" {
				a.Name = comment
			}
			l.add(a)
			cur, done, i = cur[:0], true, j
		default:
			cur = append(cur, t)
		}
	}
	flush()
	l.endGroup()
	return l.out
}

func hasKind(toks []token, k byte) bool {
	for _, t := range toks {
		if t.kind == k {
			return true
		}
	}
	return false
}

// angleAddr parses the inside of <...>: an optional obsolete route "@a,@b:" then an addr-spec.
func angleAddr(toks []token) Address {
	var adl string
	if len(toks) > 0 && toks[0].kind == '@' {
		for k, t := range toks {
			if t.kind == ':' {
				adl = join(toks[:k], false)
				toks = toks[k+1:]
				break
			}
		}
	}
	var noComments []token
	for _, t := range toks {
		if t.kind != tkComment {
			noComments = append(noComments, t)
		}
	}
	a := addrSpec(noComments)
	a.Adl = adl
	if len(noComments) == 0 {
		a.Mailbox, a.Host = MissingMailbox, MissingDomain // "<>"
	}
	return a
}

// addrSpec builds an address from the words of local-part "@" domain; without '@' the whole text is the
// mailbox.
func addrSpec(toks []token) Address {
	at := -1
	for k, t := range toks {
		if t.kind == '@' {
			at = k
		}
	}
	if at < 0 {
		return Address{Mailbox: join(toks, true), Host: MissingDomain}
	}
	a := Address{Mailbox: join(toks[:at], true), Host: join(toks[at+1:], false)}
	if a.Mailbox == "" {
		a.Mailbox = MissingMailbox
	}
	if a.Host == "" {
		a.Host = MissingDomain
	}
	return a
}

// phrase joins display-name words with single spaces.
func phrase(toks []token) string { return join(toks, true) }

// join concatenates token texts; with spaces, a single space replaces the whitespace between two words.
func join(toks []token, spaces bool) string {
	var b strings.Builder
	for k, t := range toks {
		if spaces && k > 0 && t.space {
			b.WriteByte(' ')
		}
		b.WriteString(t.text)
	}
	return b.String()
}
