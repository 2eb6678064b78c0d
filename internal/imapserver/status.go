package imapserver

import (
	"slices"
	"strings"

	"github.com/postern/postern/internal/store"
)

// statusItems reads "(" status-att *(SP status-att) ")".
func (p *parser) statusItems() []string {
	asked := map[string]bool{}
	p.expect("(")
	for p.ok() && p.peek() != ')' {
		if len(asked) > 0 {
			p.sp()
		}
		w := p.word()
		if !slices.Contains(statusOrder, w) {
			p.fail("unknown STATUS item %s", w)
		}
		asked[w] = true
	}
	p.expect(")")
	if p.ok() && len(asked) == 0 {
		p.fail("STATUS needs at least one item")
	}
	var items []string
	for _, it := range statusOrder {
		if asked[it] {
			items = append(items, it)
		}
	}
	return items
}

// statusOrder is the order STATUS answers in, whatever the order asked (RFC 9051 7.3.4 sets none; this is the
// order of RFC 3501 6.3.10's list, then the extensions', as Dovecot and James answer). Each item once.
var statusOrder = []string{"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "SIZE", "DELETED", "DELETED-STORAGE",
	"UNSEEN", "HIGHESTMODSEQ", "APPENDLIMIT"}

// cmdStatus is STATUS (RFC 9051 6.3.11; SIZE RFC 8438; HIGHESTMODSEQ RFC 7162 3.1.7; APPENDLIMIT RFC 7889).
func (c *session) cmdStatus(tag string, p *parser) error {
	p.sp()
	name := p.mailbox()
	p.sp()
	items := p.statusItems()
	p.end()
	if p.err != nil {
		return p.err
	}
	mb, err := c.opts().Store.GetMailbox(c.ctx, c.user.ID, name)
	if err != nil {
		return storeError(err, "Mailbox")
	}
	if slices.Contains(items, "HIGHESTMODSEQ") {
		c.enableCondstore() // RFC 7162 3.1: a CONDSTORE-enabling command
	}
	return c.writeStatus(mb.ID, name, items)
}

// writeStatus writes "* STATUS name (...)" for a mailbox. Counting \Deleted or \Recent reads the flags of every
// message, so it is done only when asked.
func (c *session) writeStatus(id int64, name string, items []string) error {
	st, err := c.opts().Store.MailboxStatus(c.ctx, id)
	if err != nil {
		return storeError(err, "Mailbox")
	}
	var deleted, deletedSize int64
	if slices.Contains(items, "DELETED") || slices.Contains(items, "DELETED-STORAGE") {
		msgs, err := c.opts().Store.Messages(c.ctx, store.MessageQuery{MailboxID: id})
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if hasFlag(m.Flags, `\Deleted`) {
				deleted++
				deletedSize += m.Size
			}
		}
	}
	b := []byte("* STATUS ")
	b = append(b, c.mailboxString(name)...)
	b = append(b, " ("...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, it...)
		b = append(b, ' ')
		switch it {
		case "MESSAGES":
			b = appendUint(b, uint64(st.Messages))
		case "UIDNEXT":
			b = appendUint(b, uint64(st.UIDNext))
		case "UIDVALIDITY":
			b = appendUint(b, uint64(st.UIDValidity))
		case "UNSEEN":
			b = appendUint(b, uint64(st.Unseen))
		case "DELETED":
			b = appendUint(b, uint64(deleted))
		case "DELETED-STORAGE":
			b = appendUint(b, uint64(deletedSize))
		case "SIZE":
			b = appendUint(b, uint64(st.Size))
		case "HIGHESTMODSEQ":
			b = appendUint(b, st.HighestModSeq)
		case "APPENDLIMIT":
			b = appendUint(b, uint64(c.opts().MaxMessageBytes))
		case "RECENT":
			b = appendUint(b, uint64(c.recentCount(st)))
		}
	}
	b = append(b, ')')
	c.writeLine(b)
	return nil
}

// recentCount counts the recent messages of a mailbox: for the one this session has selected, its own recent
// messages and those no session has taken yet; for any other, those no session has taken (RFC 3501 6.3.10).
func (c *session) recentCount(st store.MailboxStatus) int {
	if v := c.sel; v != nil && v.mbox.ID == st.ID && !v.readOnly {
		return len(v.recent) + st.Recent
	}
	return st.Recent
}

// hasFlag reports whether flags holds f (flags are case-insensitive).
func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}
