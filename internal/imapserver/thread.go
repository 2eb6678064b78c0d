package imapserver

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// THREAD (RFC 5256): ORDEREDSUBJECT and REFERENCES.

// threadNode is a container of the threading algorithms; msg is nil for a dummy.
type threadNode struct {
	msg      *sortedMsg
	parent   *threadNode
	children []*threadNode
}

// date is the node's sent date: its message's, or for a dummy its first child's (RFC 5256 4, step 4).
func (n *threadNode) date() (time.Time, int) {
	if n.msg != nil {
		return n.msg.sentDate(), n.msg.msn
	}
	if len(n.children) > 0 {
		return n.children[0].date()
	}
	return time.Time{}, 0
}

func byDate(a, b *threadNode) int {
	da, sa := a.date()
	db, sb := b.date()
	if r := da.Compare(db); r != 0 {
		return r
	}
	return cmp.Compare(sa, sb)
}

func (c *session) cmdThread(tag string, p *parser) error {
	p.sp()
	alg := p.word()
	p.sp()
	if p.ok() && alg != "REFERENCES" && alg != "ORDEREDSUBJECT" {
		return bad("", "Unknown threading algorithm")
	}
	msgs, err := c.threadOrSortInput(p)
	if err != nil {
		return err
	}
	var roots []*threadNode
	if alg == "ORDEREDSUBJECT" {
		roots = orderedSubject(msgs)
	} else {
		roots = references(msgs)
	}
	b := []byte("* THREAD ")
	for _, r := range roots {
		b = c.appendThread(b, r)
	}
	c.writeLine(b[:len(b)-boolInt(len(roots) == 0)])
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// appendThread writes one thread: "(" members, then nested lists where a node has several children ")".
func (c *session) appendThread(b []byte, n *threadNode) []byte {
	b = append(b, '(')
	b = c.appendMembers(b, n)
	return append(b, ')')
}

func (c *session) appendMembers(b []byte, n *threadNode) []byte {
	first := true
	for {
		if n.msg != nil {
			if !first {
				b = append(b, ' ')
			}
			b = appendUint(b, uint64(c.resultNumber(n.msg)))
			first = false
		}
		if len(n.children) == 1 {
			n = n.children[0]
			continue
		}
		if len(n.children) > 1 {
			if !first {
				b = append(b, ' ')
			}
			for _, ch := range n.children {
				b = c.appendThread(b, ch)
			}
		}
		return b
	}
}

// orderedSubject groups by base subject, threads sorted by their first message's date; every other message is
// a child of the first (RFC 5256 3, ORDEREDSUBJECT).
func orderedSubject(msgs []*sortedMsg) []*threadNode {
	slices.SortStableFunc(msgs, func(a, b *sortedMsg) int {
		if r := cmp.Compare(a.keys.Subject, b.keys.Subject); r != 0 {
			return r
		}
		if r := a.sentDate().Compare(b.sentDate()); r != 0 {
			return r
		}
		return cmp.Compare(a.msn, b.msn)
	})
	var roots []*threadNode
	for i := 0; i < len(msgs); {
		root := &threadNode{msg: msgs[i]}
		j := i + 1
		for ; j < len(msgs) && msgs[j].keys.Subject == msgs[i].keys.Subject; j++ {
			root.children = append(root.children, &threadNode{msg: msgs[j], parent: root})
		}
		roots = append(roots, root)
		i = j
	}
	slices.SortStableFunc(roots, byDate)
	return roots
}

// references implements the REFERENCES algorithm (RFC 5256 4, after Jamie Zawinski's).
func references(msgs []*sortedMsg) []*threadNode {
	byID := map[string]*threadNode{}
	var all []*threadNode
	get := func(id string) *threadNode {
		if n, ok := byID[id]; ok {
			return n
		}
		n := &threadNode{}
		byID[id] = n
		all = append(all, n)
		return n
	}
	isAncestor := func(a, b *threadNode) bool { // a is b or above b
		for x := b; x != nil; x = x.parent {
			if x == a {
				return true
			}
		}
		return false
	}
	link := func(parent, child *threadNode) {
		if child.parent != nil || isAncestor(child, parent) {
			return
		}
		child.parent = parent
		parent.children = append(parent.children, child)
	}
	for _, m := range msgs {
		id := m.keys.MessageID
		if id == "" || byID[id] != nil && byID[id].msg != nil {
			id = fmt.Sprintf("\x00unique-%d", m.msn) // step 1A: missing or duplicate Message-ID
		}
		n := get(id)
		n.msg = m
		refs := m.keys.References
		if len(refs) == 0 && m.keys.InReplyTo != "" {
			refs = []string{m.keys.InReplyTo}
		}
		var prev *threadNode
		for _, r := range refs { // step 1B
			rn := get(r)
			if prev != nil {
				link(prev, rn)
			}
			prev = rn
		}
		if prev != nil && prev != n && !isAncestor(n, prev) { // step 1C: the last reference is the parent
			if n.parent != nil {
				n.parent.children = slices.DeleteFunc(n.parent.children, func(x *threadNode) bool { return x == n })
				n.parent = nil
			}
			link(prev, n)
		}
	}
	var roots []*threadNode
	for _, n := range all {
		if n.parent == nil {
			roots = append(roots, n)
		}
	}
	roots = prune(roots, true)
	for _, r := range roots {
		sortTree(r)
	}
	slices.SortStableFunc(roots, byDate)
	return mergeBySubject(roots)
}

// prune removes dummies without children and promotes the children of other dummies (RFC 5256 4, step 3),
// except a root dummy with several children.
func prune(nodes []*threadNode, root bool) []*threadNode {
	var out []*threadNode
	for _, n := range nodes {
		n.children = prune(n.children, false)
		switch {
		case n.msg != nil:
			out = append(out, n)
		case len(n.children) == 0:
		case !root || len(n.children) == 1:
			for _, ch := range n.children {
				ch.parent = n.parent
			}
			out = append(out, n.children...)
		default:
			out = append(out, n)
		}
	}
	for _, n := range out {
		if !root {
			continue
		}
		n.parent = nil
	}
	return out
}

func sortTree(n *threadNode) {
	for _, ch := range n.children {
		sortTree(ch)
	}
	slices.SortStableFunc(n.children, byDate)
}

// subjectOf is the base subject of a root (of its first child for a dummy).
func subjectOf(n *threadNode) (string, bool) {
	for n.msg == nil && len(n.children) > 0 {
		n = n.children[0]
	}
	if n.msg == nil {
		return "", false
	}
	return n.msg.keys.Subject, n.msg.keys.SubjectReply
}

// mergeBySubject gathers roots with the same base subject (RFC 5256 4, step 5).
func mergeBySubject(roots []*threadNode) []*threadNode {
	table := map[string]*threadNode{}
	for _, r := range roots {
		s, reply := subjectOf(r)
		if s == "" {
			continue
		}
		old, ok := table[s]
		if !ok || (r.msg == nil && old.msg != nil) {
			table[s] = r
			continue
		}
		if old.msg != nil && r.msg != nil && old.msg.keys.SubjectReply && !reply {
			table[s] = r
		}
	}
	var out []*threadNode
	for _, r := range roots {
		s, reply := subjectOf(r)
		t := table[s]
		if s == "" || t == r || t == nil {
			out = append(out, r)
			continue
		}
		switch {
		case t.msg == nil && r.msg == nil:
			t.children = append(t.children, r.children...)
		case t.msg == nil || reply && !t.msg.keys.SubjectReply:
			t.children = append(t.children, r)
		default: // t becomes a dummy holding both messages
			moved := &threadNode{msg: t.msg, children: t.children, parent: t}
			t.msg, t.children = nil, []*threadNode{moved, r}
		}
		for _, ch := range t.children {
			ch.parent = t
		}
		sortTree(t)
	}
	slices.SortStableFunc(out, byDate)
	return out
}
