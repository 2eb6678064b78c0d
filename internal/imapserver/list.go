package imapserver

import (
	"sort"
	"strings"

	"github.com/postern/postern/internal/store"
)

// listOptions are LIST-EXTENDED's selection and return options (RFC 5258, RFC 6154, RFC 5819 LIST-STATUS).
type listOptions struct {
	subscribed, recursive, specialUse      bool // selection
	retSubscribed, retChildren, retSpecial bool
	status                                 []string
	extended                               bool // any option given: answer in the RFC 5258 way
}

// cmdList is LIST (RFC 9051 6.3.9 with RFC 5258 LIST-EXTENDED).
func (c *session) cmdList(tag string, p *parser) error {
	var o listOptions
	p.sp()
	if p.has("(") {
		o.extended = true
		for p.ok() && p.peek() != ')' {
			switch w := p.word(); w {
			case "SUBSCRIBED":
				o.subscribed = true
			case "RECURSIVEMATCH":
				o.recursive = true
			case "SPECIAL-USE":
				o.specialUse = true
			case "REMOTE":
			default:
				p.fail("unknown LIST selection option %s", w)
			}
			if p.peek() == ' ' {
				p.sp()
			}
		}
		p.expect(")")
		p.sp()
	}
	ref := p.listMailbox2()
	p.sp()
	var patterns []string
	if p.has("(") {
		for p.ok() && p.peek() != ')' {
			if len(patterns) > 0 {
				p.sp()
			}
			patterns = append(patterns, p.listMailbox())
		}
		p.expect(")")
	} else {
		patterns = append(patterns, p.listMailbox())
	}
	if p.ok() && p.peek() == ' ' {
		p.sp()
		p.expect("RETURN")
		p.sp()
		p.parseListReturn(&o)
	}
	p.end()
	if p.err != nil {
		return p.err
	}
	if o.recursive && !o.subscribed {
		return bad("", "RECURSIVEMATCH needs SUBSCRIBED") // RFC 5258 3.1
	}
	if len(patterns) == 1 && patterns[0] == "" && !o.extended {
		// RFC 9051 6.3.9: the hierarchy delimiter and root of the reference.
		c.writef(`* LIST (\Noselect) "/" ""`)
		return nil
	}
	return c.list(ref, patterns, o)
}

// listMailbox2 reads the reference name (a mailbox, any chars).
func (p *parser) listMailbox2() string { return p.listMailbox() }

func (p *parser) parseListReturn(o *listOptions) {
	o.extended = true
	p.expect("(")
	for p.ok() && p.peek() != ')' {
		switch w := p.word(); w {
		case "SUBSCRIBED":
			o.retSubscribed = true
		case "CHILDREN":
			o.retChildren = true
		case "SPECIAL-USE":
			o.retSpecial = true
		case "STATUS":
			p.sp()
			o.status = p.statusItems()
		case "MYRIGHTS":
		default:
			p.fail("unknown LIST return option %s", w)
		}
		if p.peek() == ' ' {
			p.sp()
		}
	}
	p.expect(")")
}

// listEntry is one line of a LIST answer.
type listEntry struct {
	name     string
	attrs    []string
	childSub bool // RECURSIVEMATCH: a subscribed child matched (CHILDINFO)
	exists   bool
	id       int64
}

// list computes and writes the LIST responses.
func (c *session) list(ref string, patterns []string, o listOptions) error {
	boxes, err := c.opts().Store.ListMailboxes(c.ctx, c.user.ID)
	if err != nil {
		return err
	}
	subs, err := c.opts().Store.ListSubscriptions(c.ctx, c.user.ID)
	if err != nil {
		return err
	}
	subscribed := map[string]bool{}
	for _, s := range subs {
		subscribed[s] = true
	}
	byName := map[string]store.MailboxStatus{}
	all := map[string]bool{} // every name that exists or is implied by a child
	for _, b := range boxes {
		byName[b.Name] = b
		for n := b.Name; ; {
			all[n] = true
			i := strings.LastIndexByte(n, '/')
			if i < 0 {
				break
			}
			n = n[:i]
		}
	}
	if o.subscribed {
		for s := range subscribed {
			all[s] = true
		}
	}
	// RFC 5258 4: \HasChildren means child mailboxes the user can access; a subscribed name without its
	// mailbox is none.
	hasChild := func(name string) bool {
		for n := range byName {
			if strings.HasPrefix(n, name+"/") {
				return true
			}
		}
		return false
	}
	var matchers []*globMatcher
	for _, pat := range patterns {
		matchers = append(matchers, newGlob(canonicalPattern(ref, pat)))
	}
	matches := func(n string) bool {
		for _, m := range matchers {
			if m.match(n) {
				return true
			}
		}
		return false
	}
	var out []listEntry
	for n := range all {
		b, exists := byName[n]
		e := listEntry{name: n, exists: exists, id: b.ID}
		if !matches(n) {
			continue
		}
		switch {
		case o.subscribed && !subscribed[n]:
			if !o.recursive || !hasSubscribedChild(n, subscribed) {
				continue
			}
			e.childSub = true
		case o.specialUse && b.SpecialUse == "":
			continue
		}
		e.attrs = listAttrs(b, exists, hasChild(n), (o.subscribed || o.retSubscribed) && subscribed[n], o.subscribed)
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return mailboxLess(out[i].name, out[j].name) })
	for _, e := range out {
		b := []byte("* LIST (")
		b = append(b, strings.Join(e.attrs, " ")...)
		b = append(b, `) "/" `...)
		b = append(b, c.mailboxString(e.name)...)
		if e.childSub {
			b = append(b, ` ("CHILDINFO" ("SUBSCRIBED"))`...)
		}
		c.writeLine(b)
		if len(o.status) > 0 && e.exists {
			if err := c.writeStatus(e.id, e.name, o.status); err != nil {
				return err
			}
		}
	}
	return nil
}

// listAttrs gives a LIST entry's attributes, in the order of RFC 5258's examples ("\Subscribed \NonExistent"):
// children, special use, subscription, then existence. A name that exists only as a subscription says nothing of
// children it does not have.
func listAttrs(b store.MailboxStatus, exists, hasChild, subscribed, subscribedSel bool) []string {
	var attrs []string
	switch {
	case hasChild:
		attrs = append(attrs, `\HasChildren`)
	case exists || !subscribedSel || !subscribed:
		attrs = append(attrs, `\HasNoChildren`)
	}
	if b.SpecialUse != "" {
		attrs = append(attrs, b.SpecialUse) // RFC 6154 2: returned in every LIST
	}
	if subscribed {
		attrs = append(attrs, `\Subscribed`)
	}
	switch {
	case exists:
	case subscribedSel && subscribed:
		attrs = append(attrs, `\NonExistent`) // RFC 5258 3.4
	default:
		attrs = append(attrs, `\Noselect`) // a parent implied by its children
	}
	return attrs
}

func hasSubscribedChild(name string, subscribed map[string]bool) bool {
	for s := range subscribed {
		if strings.HasPrefix(s, name+"/") {
			return true
		}
	}
	return false
}

// mailboxLess puts INBOX first, then names in byte order.
func mailboxLess(a, b string) bool {
	if (a == "INBOX") != (b == "INBOX") {
		return a == "INBOX"
	}
	return a < b
}

// canonicalPattern joins reference and pattern (RFC 9051 6.3.9) and spells a leading INBOX canonically.
func canonicalPattern(ref, pat string) string {
	full := pat
	if !strings.HasPrefix(pat, "/") && ref != "" {
		full = ref + pat
	}
	if len(full) >= 5 && strings.EqualFold(full[:5], "INBOX") && (len(full) == 5 || full[5] == '/') {
		full = "INBOX" + full[5:]
	}
	return full
}

// globMatcher matches names against a LIST pattern: "*" any characters, "%" any but the separator.
type globMatcher struct{ pat string }

func newGlob(p string) *globMatcher { return &globMatcher{pat: p} }

// match runs in O(len(pat)*len(name)) by dynamic programming, so no pattern can make it slow.
func (g *globMatcher) match(name string) bool {
	pat := g.pat
	// cur[j]: pat[:i] matches name[:j]
	cur := make([]bool, len(name)+1)
	next := make([]bool, len(name)+1)
	cur[0] = true
	for i := 0; i < len(pat); i++ {
		clear(next)
		switch pc := pat[i]; pc {
		case '*', '%':
			reach := false
			for j := 0; j <= len(name); j++ {
				if cur[j] {
					reach = true
				}
				next[j] = reach
				if j < len(name) && pc == '%' && name[j] == '/' {
					reach = false
				}
			}
		default:
			for j := 0; j < len(name); j++ {
				if cur[j] && name[j] == pc {
					next[j+1] = true
				}
			}
		}
		cur, next = next, cur
	}
	return cur[len(name)]
}

// cmdLsub is LSUB (RFC 3501 6.3.9; deprecated in IMAP4rev2 but still used).
func (c *session) cmdLsub(tag string, p *parser) error {
	p.sp()
	ref := p.listMailbox()
	p.sp()
	pat := p.listMailbox()
	p.end()
	if p.err != nil {
		return p.err
	}
	subs, err := c.opts().Store.ListSubscriptions(c.ctx, c.user.ID)
	if err != nil {
		return err
	}
	m := newGlob(canonicalPattern(ref, pat))
	seen := map[string]bool{}
	var names []string
	noselect := map[string]bool{}
	for _, s := range subs {
		switch {
		case m.match(s):
			if !seen[s] {
				seen[s] = true
				names = append(names, s)
			}
		default:
			// RFC 3501 6.3.9: "%" matching a parent of a subscribed name lists the parent as \Noselect.
			for n := s; strings.Contains(n, "/"); {
				n = n[:strings.LastIndexByte(n, '/')]
				if m.match(n) && !seen[n] {
					seen[n], noselect[n] = true, true
					names = append(names, n)
				}
			}
		}
	}
	sort.Slice(names, func(i, j int) bool { return mailboxLess(names[i], names[j]) })
	for _, n := range names {
		attrs := "()"
		if noselect[n] {
			attrs = `(\Noselect)`
		}
		c.writeLine(append([]byte(`* LSUB `+attrs+` "/" `), c.mailboxString(n)...))
	}
	return nil
}
