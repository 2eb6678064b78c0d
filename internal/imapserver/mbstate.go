package imapserver

import (
	"slices"
	"sort"
	"strings"

	"github.com/postern/postern/internal/store"
)

// mailboxFlags are the flags every mailbox offers (RFC 9051 2.3.2; \Recent is IMAP4rev1's and never stored).
const mailboxFlags = `\Answered \Flagged \Deleted \Seen \Draft`

// openView reads what SELECT / EXAMINE announce and builds the session's view of the mailbox. A read-write
// session takes the \Recent flag of the messages that arrived since the last session selected the mailbox
// (RFC 3501 2.3.2, kept in the store as Dovecot and Cyrus keep it); EXAMINE must not (RFC 3501 6.3.2), so it
// shows them as recent without taking them.
func (c *session) openView(mailboxID int64, readOnly bool) (*view, store.MailboxStatus, error) {
	v := &view{readOnly: readOnly, gone: map[uint32]bool{}, echo: map[uint32]uint64{}, recent: map[uint32]bool{}}
	// Subscribe first, then read: a change between the reads is seen again, never missed.
	v.notify, v.unsub = c.opts().Store.Notifier().Subscribe(mailboxID)
	st, err := c.opts().Store.MailboxStatus(c.ctx, mailboxID)
	if err == nil {
		v.uids, err = c.opts().Store.MessageUIDs(c.ctx, mailboxID)
	}
	if err == nil {
		v.keywords, err = c.opts().Store.Keywords(c.ctx, mailboxID)
	}
	from := st.FirstRecentUID
	if err == nil && !readOnly {
		from, err = c.opts().Store.ClaimRecent(c.ctx, mailboxID, v.lastUID())
	}
	if err != nil {
		v.close()
		return nil, st, err
	}
	for _, u := range v.uids[sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= from }):] {
		v.recent[u] = true
	}
	v.mbox, v.modseq = st.Mailbox, st.HighestModSeq
	return v, st, nil
}

// writeSelectData writes SELECT's untagged data (RFC 9051 6.3.2; for IMAP4rev1 sessions RECENT and UNSEEN,
// RFC 3501 6.3.1).
func (c *session) writeSelectData(v *view, st store.MailboxStatus) {
	c.writeFlags(v)
	c.writef("* %d EXISTS", len(v.uids))
	if !c.rev2 {
		c.writef("* %d RECENT", len(v.recent))
	}
	c.writef("* OK [UIDVALIDITY %d] UIDs valid", st.UIDValidity)
	if !c.rev2 && st.Unseen > 0 {
		if uid, err := c.opts().Store.FirstUnseen(c.ctx, st.ID); err != nil {
			c.log.Warn("first unseen", "mailbox", st.Name, "err", err)
		} else if i := v.index(uid); i >= 0 {
			c.writef("* OK [UNSEEN %d] First unseen", i+1)
		}
	}
	c.writef("* OK [UIDNEXT %d] Predicted next UID", st.UIDNext)
	c.writePermanentFlags(v)
	c.writef("* OK [HIGHESTMODSEQ %d] Highest", st.HighestModSeq) // RFC 7162 3.1.2.1
	if c.rev2 {
		b := append([]byte(`* LIST () "/" `), c.mailboxString(st.Name)...)
		c.writeLine(b)
	}
}

// writeFlags writes FLAGS: the system flags and the keywords in use in the mailbox (RFC 9051 7.3.5).
func (c *session) writeFlags(v *view) {
	c.writef("* FLAGS (%s)", strings.Join(append([]string{mailboxFlags}, v.keywords...), " "))
}

// writePermanentFlags writes PERMANENTFLAGS: every flag, and \* for new keywords, unless the mailbox is
// read-only (RFC 9051 6.3.3: none then).
func (c *session) writePermanentFlags(v *view) {
	if v.readOnly {
		c.writef("* OK [PERMANENTFLAGS ()] Read-only mailbox")
		return
	}
	flags := append(append([]string{mailboxFlags}, v.keywords...), `\*`)
	c.writef("* OK [PERMANENTFLAGS (%s)] Flags permitted", strings.Join(flags, " "))
}

// noteKeywords announces keywords the view has not listed yet with FLAGS and PERMANENTFLAGS (RFC 3501 7.2.6: the
// client must record a FLAGS update; sent before the FETCH that shows the keyword).
func (c *session) noteKeywords(flags []string) {
	v := c.sel
	added := false
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) || slices.ContainsFunc(v.keywords, func(k string) bool { return strings.EqualFold(k, f) }) {
			continue
		}
		v.keywords = append(v.keywords, f)
		added = true
	}
	if added {
		sort.Strings(v.keywords)
		c.writeFlags(v)
		c.writePermanentFlags(v)
	}
}
