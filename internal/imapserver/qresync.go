package imapserver

// QRESYNC (RFC 7162 3.2): resynchronization on SELECT.

// qresyncParams is "(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")".
type qresyncParams struct {
	uidValidity uint32
	modseq      uint64
	knownUIDs   seqSet
	hasKnown    bool
}

func (p *parser) qresyncParams() *qresyncParams {
	q := &qresyncParams{}
	p.expect("(")
	q.uidValidity = p.nzNumber()
	p.sp()
	q.modseq = p.number64()
	if p.ok() && p.peek() == ' ' {
		p.sp()
		if p.peek() != '(' {
			q.knownUIDs, q.hasKnown = p.seqSet(), true
			if p.ok() && p.peek() == ' ' {
				p.sp()
			}
		}
		if p.has("(") { // seq-match-data: we answer precisely from tombstones, so it is parsed and not needed
			p.seqSet()
			p.sp()
			p.seqSet()
			p.expect(")")
		}
	}
	p.expect(")")
	return q
}

// qresyncSelect reports what changed since the client's mod-sequence: VANISHED (EARLIER) and FETCH.
func (c *session) qresyncSelect(q *qresyncParams) error {
	v := c.sel
	cs, err := c.opts().Store.Changes(c.ctx, v.mbox.ID, q.modseq)
	if err != nil {
		return err
	}
	var vanished []uint32
	for _, u := range cs.Expunged {
		if !q.hasKnown || inUIDSet(q.knownUIDs, u, v.lastUID()) {
			vanished = append(vanished, u)
		}
	}
	if len(vanished) > 0 {
		c.writeLine(appendUIDSet([]byte("* VANISHED (EARLIER) "), vanished))
	}
	for _, m := range cs.Messages {
		if i := v.index(m.UID); i >= 0 {
			c.writeFlagsFetch(i+1, m)
		}
	}
	return nil
}

// inUIDSet reports whether uid is in a UID sequence set ("*" = last).
func inUIDSet(s seqSet, uid, last uint32) bool {
	for _, r := range s.ranges {
		lo, hi := r.bounds(max(last, uid))
		if uid >= lo && uid <= hi {
			return true
		}
	}
	return false
}

// enableCondstore turns CONDSTORE on for a CONDSTORE-enabling command (RFC 7162 3.1). The first one issued while
// a mailbox is selected also reports the mailbox's HIGHESTMODSEQ in an untagged OK: from then on the client
// tracks mod-sequences, and the value it may have seen at SELECT can be stale.
func (c *session) enableCondstore() {
	if c.condstore {
		return
	}
	c.condstore = true
	if c.sel != nil {
		c.writef("* OK [HIGHESTMODSEQ %d] Highest", c.sel.modseq)
	}
}
