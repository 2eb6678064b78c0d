package imapserver

import (
	"errors"
	"sort"

	"github.com/postern/postern/internal/store"
)

// view is a session's selected mailbox: the MSN <-> UID list the client has been told about. Store changes reach
// it through a Notifier wake-up and Store.Changes; they are announced only where RFC 9051 7.5.1 allows, and an
// expunged message keeps its sequence number until its EXPUNGE (or VANISHED) is sent.
type view struct {
	mbox     store.Mailbox
	readOnly bool
	uids     []uint32        // index = MSN-1; ascending
	gone     map[uint32]bool // expunged in the store, not announced yet
	modseq   uint64          // changes up to this mod-sequence are applied
	notify   <-chan struct{}
	unsub    func()
	echo     map[uint32]uint64 // flag changes this session made and already reported: uid -> modseq
	recent   map[uint32]bool   // \Recent for this session (shown to IMAP4rev1 sessions only)
	keywords []string          // announced in FLAGS, sorted
}

func (v *view) close() {
	if v.unsub != nil {
		v.unsub()
		v.unsub = nil
	}
}

// index returns the MSN-1 of uid, or -1.
func (v *view) index(uid uint32) int {
	i := sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= uid })
	if i < len(v.uids) && v.uids[i] == uid {
		return i
	}
	return -1
}

func (v *view) lastUID() uint32 {
	if len(v.uids) == 0 {
		return 0
	}
	return v.uids[len(v.uids)-1]
}

// errBadSeq answers a sequence number the client cannot know (RFC 9051 7.1.5: BAD for invalid arguments).
var errBadSeq = bad("", "Invalid message sequence number")

// resolve returns the indexes (MSN-1, ascending, unique) the set names: sequence numbers, or UIDs for a UID
// command. Unknown UIDs are ignored (RFC 9051 6.4.9); sequence numbers beyond EXISTS are an error.
func (v *view) resolve(set seqSet, byUID bool, saved []uint32) ([]int, error) {
	var idx []int
	if set.saved {
		for _, u := range saved {
			if i := v.index(u); i >= 0 {
				idx = append(idx, i)
			}
		}
		return idx, nil
	}
	n := len(v.uids)
	if byUID {
		seen := make(map[int]bool)
		for _, r := range set.ranges {
			lo, hi := r.bounds(v.lastUID())
			from := sort.Search(n, func(i int) bool { return v.uids[i] >= lo })
			for i := from; i < n && v.uids[i] <= hi; i++ {
				if !seen[i] {
					seen[i] = true
					idx = append(idx, i)
				}
			}
		}
		sort.Ints(idx)
		return idx, nil
	}
	mark := make([]bool, n)
	for _, r := range set.ranges {
		if n == 0 {
			return nil, errBadSeq
		}
		lo, hi := r.bounds(uint32(n))
		if hi > uint32(n) {
			return nil, errBadSeq
		}
		for i := lo; i <= hi; i++ {
			mark[i-1] = true
		}
	}
	for i, m := range mark {
		if m {
			idx = append(idx, i)
		}
	}
	return idx, nil
}

// uidsAt returns the UIDs of indexes.
func (v *view) uidsAt(idx []int) []uint32 {
	out := make([]uint32, len(idx))
	for k, i := range idx {
		out[k] = v.uids[i]
	}
	return out
}

// pollUpdates brings the view up to date and writes the untagged responses allowed now. allowExpunge is false
// while answering FETCH, STORE and SEARCH by sequence number (RFC 9051 7.5.1); force asks the store even without
// a wake-up (NOOP, and after this session's own changes).
func (c *session) pollUpdates(allowExpunge, force bool) {
	v := c.sel
	if v == nil {
		return
	}
	notified := false
	select {
	case <-v.notify:
		notified = true
	default:
	}
	if notified || force {
		cs, err := c.opts().Store.Changes(c.ctx, v.mbox.ID, v.modseq)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				c.writef("* BYE Selected mailbox was deleted") // RFC 9051 7.1.5
				c.state = stateLogout
				return
			}
			c.log.Warn("mailbox changes", "mailbox", v.mbox.Name, "err", err)
			return
		}
		c.applyChanges(cs, allowExpunge)
	}
	if allowExpunge && len(v.gone) > 0 {
		c.announceExpunges()
	}
}

// applyChanges records expunges (and announces them first when allowed, so what follows uses the sequence
// numbers the client is left with), appends new messages (EXISTS, RECENT) and reports flag changes (FETCH).
func (c *session) applyChanges(cs store.ChangeSet, allowExpunge bool) {
	v := c.sel
	expunged := make(map[uint32]bool, len(cs.Expunged))
	for _, u := range cs.Expunged {
		expunged[u] = true
		if v.index(u) >= 0 {
			v.gone[u] = true
		}
	}
	if allowExpunge {
		c.announceExpunges()
	}
	last := v.lastUID()
	var added []uint32
	var updates []store.Message
	for _, m := range cs.Messages {
		switch {
		case expunged[m.UID] || v.gone[m.UID]:
		case m.UID > last:
			v.uids = append(v.uids, m.UID)
			added = append(added, m.UID)
			last = m.UID
		case v.echo[m.UID] == m.ModSeq && m.ModSeq != 0:
			delete(v.echo, m.UID)
		case v.index(m.UID) >= 0:
			updates = append(updates, m)
		}
	}
	v.modseq = max(v.modseq, cs.HighestModSeq)
	if len(added) > 0 {
		c.writef("* %d EXISTS", len(v.uids))
		c.claimRecent(added)
		if !c.rev2 {
			c.writef("* %d RECENT", len(v.recent))
		}
	}
	for _, m := range cs.Messages {
		if v.index(m.UID) >= 0 && !v.gone[m.UID] {
			c.noteKeywords(m.Flags)
		}
	}
	for _, m := range updates {
		c.writeFlagsFetch(v.index(m.UID)+1, m)
	}
}

// claimRecent gives the \Recent flag of messages new to the view (RFC 3501 2.3.2). Every session that has the
// mailbox selected when a message arrives is told of it at the same time, so none can tell it was not the first
// and each shows it as recent ("SHOULD be considered recent"); a read-write one also takes the flag in the
// store, so a session that selects the mailbox later does not see it again. A read-only session takes nothing
// (RFC 3501 6.3.2).
func (c *session) claimRecent(added []uint32) {
	v := c.sel
	if !v.readOnly {
		if _, err := c.opts().Store.ClaimRecent(c.ctx, v.mbox.ID, added[len(added)-1]); err != nil {
			c.log.Warn("claim recent", "mailbox", v.mbox.Name, "err", err)
		}
	}
	for _, u := range added {
		v.recent[u] = true
	}
}

// writeFlagsFetch reports a message's flags: "* n FETCH (UID u FLAGS (...) [MODSEQ (m)])".
func (c *session) writeFlagsFetch(msn int, m store.Message) {
	b := []byte("* ")
	b = appendUint(b, uint64(msn))
	b = append(b, " FETCH (UID "...)
	b = appendUint(b, uint64(m.UID))
	b = append(b, " FLAGS "...)
	b = appendFlags(b, c.flagsOf(m))
	if c.condstore {
		b = append(b, " MODSEQ ("...)
		b = appendUint(b, m.ModSeq)
		b = append(b, ')')
	}
	b = append(b, ')')
	c.writeLine(b)
}

// flagsOf returns a message's flags as this session shows them (with \Recent for IMAP4rev1).
func (c *session) flagsOf(m store.Message) []string {
	if c.sel != nil && c.sel.recent[m.UID] {
		return append(append([]string(nil), m.Flags...), `\Recent`)
	}
	return m.Flags
}

// announceExpunges sends EXPUNGE (or VANISHED with QRESYNC, RFC 7162 3.2.10) for every expunged message and
// removes it from the view.
func (c *session) announceExpunges() {
	v := c.sel
	if len(v.gone) == 0 {
		return
	}
	var vanished []uint32
	kept := v.uids[:0]
	removed, recentBefore := 0, len(v.recent)
	for i, u := range v.uids {
		if !v.gone[u] {
			kept = append(kept, u)
			continue
		}
		if c.qresync {
			vanished = append(vanished, u)
		} else {
			c.writef("* %d EXPUNGE", i+1-removed)
		}
		removed++
		delete(v.recent, u)
		delete(v.echo, u)
	}
	v.uids = kept
	v.gone = map[uint32]bool{}
	if len(vanished) > 0 {
		c.writeLine(appendUIDSet([]byte("* VANISHED "), vanished))
	}
	if !c.rev2 && len(v.recent) != recentBefore {
		c.writef("* %d RECENT", len(v.recent)) // RFC 3501 7.3.2: the mailbox size changed
	}
}
