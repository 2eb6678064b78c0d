package imapserver

import (
	"errors"
	"fmt"
	"strings"

	"github.com/postern/postern/internal/store"
)

// selectedUIDs resolves a sequence set against the view and drops messages already expunged in the store.
func (c *session) selectedUIDs(set seqSet) ([]int, []uint32, error) {
	idx, err := c.sel.resolve(set, isUID(c.cmdName), c.searchRes)
	if err != nil {
		return nil, nil, err
	}
	kept := idx[:0]
	for _, i := range idx {
		if !c.sel.gone[c.sel.uids[i]] {
			kept = append(kept, i)
		}
	}
	return kept, c.sel.uidsAt(kept), nil
}

// cmdStore is STORE and UID STORE (RFC 9051 6.4.6) with UNCHANGEDSINCE (RFC 7162 3.1.3).
func (c *session) cmdStore(tag string, p *parser) error {
	p.sp()
	set := p.seqSet()
	p.sp()
	var unchangedSince uint64
	hasUnchanged := false
	if p.has("(") {
		p.expect("UNCHANGEDSINCE")
		p.sp()
		unchangedSince, hasUnchanged = p.number64(), true
		p.expect(")")
		p.sp()
	}
	op := store.FlagsReplace
	if p.has("+") {
		op = store.FlagsAdd
	} else if p.has("-") {
		op = store.FlagsRemove
	}
	p.expect("FLAGS")
	silent := p.has(".SILENT")
	p.sp()
	flags := p.flagList(true)
	p.end()
	if p.err != nil {
		return p.err
	}
	v := c.sel
	if v.readOnly {
		return no("READ-ONLY", "Mailbox is read-only")
	}
	if hasUnchanged {
		c.enableCondstore()
	}
	_, uids, err := c.selectedUIDs(set)
	if err != nil {
		return err
	}
	if len(uids) == 0 {
		return nil
	}
	clean := flags[:0]
	for _, f := range flags {
		if f != `\Recent` { // RFC 3501 2.3.2: \Recent cannot be changed by STORE
			clean = append(clean, f)
		}
	}
	var res store.StoreFlagsResult
	if hasUnchanged && unchangedSince == 0 {
		// RFC 7162 3.1.3: every message has a mod-sequence above 0, so none may change.
		res.Modified = uids
	} else {
		res, err = c.opts().Store.StoreFlags(c.ctx, store.StoreFlagsRequest{MailboxID: v.mbox.ID,
			UIDs: uidSetOf(uids), Op: op, Flags: clean, UnchangedSince: unchangedSince})
		if err != nil {
			return storeError(err, "Mailbox")
		}
	}
	c.trainStore(v.mbox.ID, op, clean, uids)()
	c.answerStore(res, silent)
	return nil
}

// answerStore reports a STORE's result: FLAGS first when a keyword is new to the mailbox, then a FETCH per changed
// message (none for .SILENT unless CONDSTORE wants the MODSEQ), and MODIFIED for UNCHANGEDSINCE failures.
func (c *session) answerStore(res store.StoreFlagsResult, silent bool) {
	v := c.sel
	modified := map[uint32]bool{}
	for _, u := range res.Modified {
		modified[u] = true
	}
	for _, m := range res.Messages {
		c.noteKeywords(m.Flags)
	}
	for _, m := range res.Messages {
		i := v.index(m.UID)
		if i < 0 || modified[m.UID] {
			continue
		}
		v.echo[m.UID] = m.ModSeq
		if silent && !c.condstore {
			continue
		}
		c.writeStoreFetch(i+1, m, silent)
	}
	if len(res.Modified) > 0 {
		c.okCode = "MODIFIED " + string(c.numbersOf(res.Modified))
		c.okText = "Conditional STORE failed for some messages"
	}
}

// writeStoreFetch answers STORE: FLAGS (unless .SILENT), UID for UID STORE, MODSEQ with CONDSTORE.
func (c *session) writeStoreFetch(msn int, m store.Message, silent bool) {
	b := []byte("* ")
	b = appendUint(b, uint64(msn))
	b = append(b, " FETCH ("...)
	sep := false
	if isUID(c.cmdName) || silent {
		b = append(b, "UID "...)
		b = appendUint(b, uint64(m.UID))
		sep = true
	}
	if !silent {
		if sep {
			b = append(b, ' ')
		}
		b = append(b, "FLAGS "...)
		b = appendFlags(b, c.flagsOf(m))
		sep = true
	}
	if c.condstore {
		if sep {
			b = append(b, ' ')
		}
		b = append(b, "MODSEQ ("...)
		b = appendUint(b, m.ModSeq)
		b = append(b, ')')
	}
	c.writeLine(append(b, ')'))
}

// numbersOf writes UIDs as a UID set for a UID command and as sequence numbers otherwise.
func (c *session) numbersOf(uids []uint32) []byte {
	uids = sortedUnique(append([]uint32(nil), uids...))
	if isUID(c.cmdName) {
		return appendUIDSet(nil, uids)
	}
	var msns []uint32
	for _, u := range uids {
		if i := c.sel.index(u); i >= 0 {
			msns = append(msns, uint32(i+1))
		}
	}
	return appendUIDSet(nil, msns)
}

// cmdCopy is COPY, MOVE and their UID forms (RFC 9051 6.4.7, RFC 6851, UIDPLUS COPYUID RFC 4315).
func (c *session) cmdCopy(tag string, p *parser) error {
	p.sp()
	set := p.seqSet()
	p.sp()
	dest := p.mailbox()
	p.end()
	if p.err != nil {
		return p.err
	}
	move := strings.HasSuffix(c.cmdName, "MOVE")
	v := c.sel
	if move && v.readOnly {
		return no("READ-ONLY", "Mailbox is read-only")
	}
	dst, err := c.opts().Store.GetMailbox(c.ctx, c.user.ID, dest)
	if errors.Is(err, store.ErrNotFound) {
		return no("TRYCREATE", "Destination mailbox does not exist") // RFC 9051 6.4.7
	}
	if err != nil {
		return err
	}
	_, uids, err := c.selectedUIDs(set)
	if err != nil {
		return err
	}
	if len(uids) == 0 {
		return nil
	}
	// The blobs are looked up before the copy (after a MOVE the source rows are gone); the trainer hears of them
	// only once the copy is committed.
	train := c.trainCopy(v.mbox, dst, uids, move)
	res, err := c.opts().Store.Copy(c.ctx, store.CopyRequest{SrcMailboxID: v.mbox.ID, UIDs: uidSetOf(uids),
		DstMailboxID: dst.ID, Move: move})
	if err != nil {
		return storeError(err, "Mailbox")
	}
	train()
	code := ""
	if len(res.SrcUIDs) > 0 {
		code = fmt.Sprintf("COPYUID %d %s %s", res.UIDValidity, appendSeqList(nil, res.SrcUIDs), appendSeqList(nil, res.DstUIDs))
	}
	if move {
		if code != "" {
			c.writef("* OK [%s] Moved", code) // RFC 6851 4.3
		}
		for _, u := range res.SrcUIDs {
			v.gone[u] = true
		}
		c.announceExpunges()
	} else {
		c.okCode = code
	}
	if dst.ID == v.mbox.ID {
		c.pollUpdates(true, true)
	}
	return nil
}

// cmdExpunge is EXPUNGE and UID EXPUNGE (RFC 9051 6.4.3, RFC 4315 2.1).
func (c *session) cmdExpunge(tag string, p *parser) error {
	var set seqSet
	byUID := c.cmdName == "UID EXPUNGE"
	if byUID {
		p.sp()
		set = p.seqSet()
	}
	p.end()
	if p.err != nil {
		return p.err
	}
	v := c.sel
	if v.readOnly {
		return no("READ-ONLY", "Mailbox is read-only")
	}
	req := store.ExpungeRequest{MailboxID: v.mbox.ID, RequireDeleted: true}
	if byUID {
		_, uids, err := c.selectedUIDs(set)
		if err != nil {
			return err
		}
		if len(uids) == 0 {
			return nil
		}
		req.UIDs = uidSetOf(uids)
	} else {
		if v.lastUID() == 0 {
			return nil
		}
		req.UIDs = store.UIDSet{{Start: 1, Stop: v.lastUID()}}
	}
	res, err := c.opts().Store.Expunge(c.ctx, req)
	if err != nil {
		return storeError(err, "Mailbox")
	}
	for _, u := range res.UIDs {
		if v.index(u) >= 0 {
			v.gone[u] = true
		}
	}
	c.announceExpunges()
	if c.condstore {
		c.okCode = fmt.Sprintf("HIGHESTMODSEQ %d", res.HighestModSeq)
	}
	return nil
}
