package imapserver

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/postern/postern/internal/store"
)

// storeError turns a store error into the NO a client understands (RFC 5530 response codes); other errors stay
// internal (NO [SERVERBUG] with the cause in the log).
func storeError(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return no("NONEXISTENT", what+" does not exist")
	case errors.Is(err, store.ErrExists):
		return no("ALREADYEXISTS", what+" already exists")
	case errors.Is(err, store.ErrQuotaExceeded):
		return no("OVERQUOTA", "Quota exceeded")
	}
	return err
}

// specialUses are the RFC 6154 attributes CREATE accepts.
var specialUses = []string{`\All`, `\Archive`, `\Drafts`, `\Flagged`, `\Junk`, `\Sent`, `\Trash`, `\Important`}

// cmdSelect is SELECT and EXAMINE (RFC 9051 6.3.2, 6.3.3) with the CONDSTORE and QRESYNC parameters
// (RFC 7162 3.1.8, 3.2.5).
func (c *session) cmdSelect(tag string, p *parser) error {
	readOnly := c.cmdName == "EXAMINE"
	p.sp()
	name := p.mailbox()
	var qr *qresyncParams
	if p.ok() && p.peek() == ' ' {
		p.sp()
		p.expect("(")
		for p.ok() && p.peek() != ')' {
			switch w := p.word(); w {
			case "CONDSTORE":
				c.condstore = true
			case "QRESYNC":
				p.sp()
				qr = p.qresyncParams()
			default:
				p.fail("unknown SELECT parameter %s", w)
			}
			if p.peek() == ' ' {
				p.sp()
			}
		}
		p.expect(")")
	}
	p.end()
	if p.err != nil {
		return p.err
	}
	if qr != nil && !c.qresync {
		return bad("", "QRESYNC is not enabled") // RFC 7162 3.2.5
	}
	if c.sel != nil { // RFC 9051 6.3.2 / RFC 7162 3.2.11: the previous mailbox is closed first
		c.prevSel = c.sel
		c.sel.close()
		c.sel, c.state = nil, stateAuth
		c.writef("* OK [CLOSED] Previous mailbox closed")
	}
	mb, err := c.opts().Store.GetMailbox(c.ctx, c.user.ID, name)
	if err != nil {
		return storeError(err, "Mailbox")
	}
	v, st, err := c.openView(mb.ID, readOnly)
	if err != nil {
		return storeError(err, "Mailbox")
	}
	if prev := c.prevSel; prev != nil && prev.mbox.ID == mb.ID && prev.mbox.UIDValidity == st.UIDValidity {
		// Selecting the same mailbox again (a failed SELECT in between): this session is still the first that
		// was told of the messages it had as \Recent (RFC 3501 2.3.2), and no other session has them.
		for u := range prev.recent {
			if v.index(u) >= 0 {
				v.recent[u] = true
			}
		}
	}
	c.prevSel = nil
	c.writeSelectData(v, st)
	c.sel, c.state = v, stateSelected
	if qr != nil && qr.uidValidity == st.UIDValidity {
		if err := c.qresyncSelect(qr); err != nil {
			return err
		}
	}
	if readOnly {
		c.okCode = "READ-ONLY"
	} else {
		c.okCode = "READ-WRITE"
	}
	return nil
}

// mailboxString encodes a mailbox name for a response: modified UTF-7 unless the session uses UTF-8.
func (c *session) mailboxString(name string) []byte {
	if c.utf8Names() {
		return appendAstring(nil, name, true)
	}
	return appendAstring(nil, encodeMUTF7(name), false)
}

// cmdClose is CLOSE (expunge \Deleted silently unless read-only, RFC 9051 6.4.1) and UNSELECT (RFC 3691).
func (c *session) cmdClose(tag string, p *parser) error {
	p.end()
	if p.err != nil {
		return p.err
	}
	v := c.sel
	if c.cmdName == "CLOSE" && !v.readOnly {
		if _, err := c.opts().Store.Expunge(c.ctx, store.ExpungeRequest{MailboxID: v.mbox.ID, UIDs: store.AllUIDs,
			RequireDeleted: true}); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	v.close()
	c.sel, c.state, c.prevSel = nil, stateAuth, nil // the session is done with the mailbox and its \Recent
	return nil
}

// validName checks a mailbox name for CREATE and RENAME.
func (c *session) validName(name, raw string) error {
	switch {
	case name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "//"):
		return no("CANNOT", "Invalid mailbox name")
	case strings.ContainsAny(name, "*%\r\n\x00") || !utf8.ValidString(name) || len(name) > 1000:
		return no("CANNOT", "Invalid mailbox name")
	case !c.utf8Names():
		if _, err := decodeMUTF7(raw); err != nil {
			return no("CANNOT", "Mailbox name is not valid modified UTF-7") // RFC 3501 5.1.3
		}
	}
	return nil
}

// cmdCreate is CREATE (RFC 9051 6.3.4) with CREATE-SPECIAL-USE (RFC 6154 3).
func (c *session) cmdCreate(tag string, p *parser) error {
	p.sp()
	raw := p.astring()
	name := strings.TrimSuffix(p.mailboxName(raw), "/") // a trailing separator announces children (6.3.4)
	use := ""
	if p.ok() && p.peek() == ' ' {
		p.sp()
		p.expect("(")
		p.expect("USE")
		p.sp()
		uses := p.flagList(false)
		p.expect(")")
		if p.ok() && len(uses) > 1 {
			return no("USEATTR", "Only one special-use attribute per mailbox")
		}
		if len(uses) == 1 {
			use = uses[0]
		}
	}
	p.end()
	if p.err != nil {
		return p.err
	}
	if err := c.validName(name, raw); err != nil {
		return err
	}
	if use != "" {
		known := false
		for _, s := range specialUses {
			if strings.EqualFold(s, use) {
				use, known = s, true
			}
		}
		if !known {
			return no("USEATTR", "Unsupported special-use attribute")
		}
	}
	if name == "INBOX" {
		return no("ALREADYEXISTS", "INBOX always exists")
	}
	if err := c.createParents(name); err != nil {
		return err
	}
	if _, err := c.opts().Store.CreateMailbox(c.ctx, c.user.ID, name, use); err != nil {
		return storeError(err, "Mailbox")
	}
	return nil
}

// createParents creates the missing superiors of name (RFC 9051 6.3.4: "SHOULD create any superior names").
func (c *session) createParents(name string) error {
	parts := strings.Split(name, "/")
	for i := 1; i < len(parts); i++ {
		parent := strings.Join(parts[:i], "/")
		if parent == "INBOX" {
			continue
		}
		_, err := c.opts().Store.CreateMailbox(c.ctx, c.user.ID, parent, "")
		if err != nil && !errors.Is(err, store.ErrExists) {
			return storeError(err, "Parent mailbox")
		}
	}
	return nil
}

func (c *session) cmdDelete(tag string, p *parser) error {
	p.sp()
	name := p.mailbox()
	p.end()
	if p.err != nil {
		return p.err
	}
	if name == "INBOX" {
		return no("CANNOT", "INBOX cannot be deleted")
	}
	if c.sel != nil && c.sel.mbox.Name == name {
		c.sel.close()
		c.sel, c.state = nil, stateAuth
		c.writef("* OK [CLOSED] Selected mailbox deleted")
	}
	if err := c.opts().Store.DeleteMailbox(c.ctx, c.user.ID, name); err != nil {
		return storeError(err, "Mailbox")
	}
	return nil
}

func (c *session) cmdRename(tag string, p *parser) error {
	p.sp()
	from := p.mailbox()
	p.sp()
	raw := p.astring()
	to := strings.TrimSuffix(p.mailboxName(raw), "/")
	p.end()
	if p.err != nil {
		return p.err
	}
	if err := c.validName(to, raw); err != nil {
		return err
	}
	if to == "INBOX" {
		return no("ALREADYEXISTS", "INBOX always exists")
	}
	if from != "INBOX" && strings.HasPrefix(to, from+"/") {
		return no("CANNOT", "Cannot rename a mailbox into itself")
	}
	if _, err := c.opts().Store.GetMailbox(c.ctx, c.user.ID, from); err != nil {
		return storeError(err, "Mailbox")
	}
	if err := c.createParents(to); err != nil {
		return err
	}
	if err := c.opts().Store.RenameMailbox(c.ctx, c.user.ID, from, to); err != nil {
		return storeError(err, "Mailbox")
	}
	if c.sel != nil && c.sel.mbox.Name == from {
		c.sel.mbox.Name = to
	}
	return nil
}

// cmdSubscribe is SUBSCRIBE and UNSUBSCRIBE (RFC 9051 6.3.7, 6.3.8).
func (c *session) cmdSubscribe(tag string, p *parser) error {
	p.sp()
	name := p.mailbox()
	p.end()
	if p.err != nil {
		return p.err
	}
	var err error
	if c.cmdName == "SUBSCRIBE" {
		// A name may be subscribed before its mailbox exists, or after it is gone (RFC 3501 6.3.6, RFC 9051
		// 6.3.7: the server MAY check; we do not, as Dovecot does not): LIST marks it \NonExistent.
		err = c.opts().Store.Subscribe(c.ctx, c.user.ID, name)
	} else if err = c.opts().Store.Unsubscribe(c.ctx, c.user.ID, name); errors.Is(err, store.ErrNotFound) {
		err = nil // not subscribed: what the client asked for already holds
	}
	if err != nil {
		return storeError(err, "Subscription")
	}
	return nil
}

func (c *session) cmdNamespace(tag string, p *parser) error {
	p.end()
	if p.err != nil {
		return p.err
	}
	c.writef(`* NAMESPACE (("" "/")) NIL NIL`)
	return nil
}
