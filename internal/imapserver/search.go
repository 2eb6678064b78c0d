package imapserver

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/postern/postern/internal/store"
)

// cmdSearch is SEARCH and UID SEARCH (RFC 9051 6.4.4, ESEARCH RFC 4731, SEARCHRES RFC 5182, CONDSTORE MODSEQ).
func (c *session) cmdSearch(tag string, p *parser) error {
	p.sp()
	args := p.searchArgs()
	p.end()
	if p.err != nil {
		return p.err
	}
	switch args.charset {
	case "", "UTF-8", "US-ASCII":
	default:
		return no("BADCHARSET (UTF-8 US-ASCII)", "Unsupported charset")
	}
	if args.key.usesModSeq() {
		c.enableCondstore()
	}
	matches, err := c.searchMessages(args.key)
	if err != nil {
		return err
	}
	c.writeSearchResult(tag, args, matches)
	return nil
}

// searchMessages evaluates a program over the view and returns the matching messages in MSN order. Flags, sizes,
// dates and UIDs come from the message rows; only keys on header or text read the message.
func (c *session) searchMessages(key *searchKey) ([]store.Message, error) {
	v := c.sel
	if len(v.uids) == 0 {
		return nil, nil
	}
	msgs, err := c.opts().Store.Messages(c.ctx, store.MessageQuery{MailboxID: v.mbox.ID,
		UIDs: store.UIDSet{{Start: 1, Stop: v.lastUID()}}, WithMeta: key.needsContent()})
	if err != nil {
		return nil, storeError(err, "Mailbox")
	}
	orderKeys(key)
	now := time.Now()
	var out []store.Message
	for _, m := range msgs {
		i := v.index(m.UID)
		if i < 0 || v.gone[m.UID] {
			continue
		}
		e := &evalCtx{c: c, msn: i + 1, f: &fetchMsg{c: c, m: m}, now: now}
		ok, err := e.eval(key)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// orderKeys puts cheap keys before ones that read the message, so AND short-circuits before I/O.
func orderKeys(k *searchKey) {
	if k == nil {
		return
	}
	for _, kid := range k.kids {
		orderKeys(kid)
	}
	if k.op == "AND" {
		sort.SliceStable(k.kids, func(i, j int) bool { return !k.kids[i].needsContent() && k.kids[j].needsContent() })
	}
}

// evalCtx evaluates a program for one message.
type evalCtx struct {
	c   *session
	msn int
	f   *fetchMsg
	now time.Time
}

func (e *evalCtx) eval(k *searchKey) (bool, error) {
	m := e.f.m
	v := e.c.sel
	switch k.op {
	case "ALL":
		return true, nil
	case "AND":
		for _, kid := range k.kids {
			if ok, err := e.eval(kid); !ok || err != nil {
				return false, err
			}
		}
		return true, nil
	case "OR":
		for _, kid := range k.kids {
			if ok, err := e.eval(kid); ok || err != nil {
				return ok, err
			}
		}
		return false, nil
	case "NOT":
		ok, err := e.eval(k.kids[0])
		return !ok, err
	case "FLAG":
		return e.hasFlag(k.flag), nil
	case "UNFLAG":
		return !e.hasFlag(k.flag), nil
	case "RECENT":
		return v.recent[m.UID], nil
	case "NEW":
		return v.recent[m.UID] && !hasFlag(m.Flags, `\Seen`), nil
	case "OLD":
		return !v.recent[m.UID], nil
	case "LARGER":
		return uint64(m.Size) > k.num, nil
	case "SMALLER":
		return uint64(m.Size) < k.num, nil
	case "BEFORE", "ON", "SINCE":
		return compareDate(k.op, m.InternalDate, k.date), nil
	case "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE":
		if m.SaveDate.IsZero() {
			return false, nil
		}
		return compareDate(k.op[5:], m.SaveDate, k.date), nil
	case "SAVEDATESUPPORTED":
		return true, nil
	case "OLDER":
		return e.now.Sub(m.InternalDate) >= time.Duration(k.num)*time.Second, nil
	case "YOUNGER":
		return e.now.Sub(m.InternalDate) < time.Duration(k.num)*time.Second, nil
	case "MODSEQ":
		return m.ModSeq >= k.num, nil
	case "UID":
		if k.set.saved {
			return slices.Contains(e.c.searchRes, m.UID), nil
		}
		return inUIDSet(k.set, m.UID, v.lastUID()), nil
	case "SEQ":
		if k.set.saved {
			return slices.Contains(e.c.searchRes, m.UID), nil
		}
		return inUIDSet(k.set, uint32(e.msn), uint32(len(v.uids))), nil
	case "SENTBEFORE", "SENTON", "SENTSINCE":
		d, err := e.f.sentDate()
		if err != nil || d.IsZero() {
			return false, err
		}
		return compareDate(k.op[4:], d, k.date), nil
	case "HEADER", "BODY", "TEXT":
		return e.f.contains(k.op, k.field, k.value)
	}
	return false, fmt.Errorf("search key %s not implemented", k.op)
}

func (e *evalCtx) hasFlag(f string) bool {
	if f == `\Recent` {
		return e.c.sel.recent[e.f.m.UID]
	}
	return hasFlag(e.f.m.Flags, f)
}

// compareDate compares the calendar date of t (in its own zone, RFC 9051 6.4.4: "disregarding time and
// timezone") with d.
func compareDate(op string, t, d time.Time) bool {
	y, mo, da := t.Date()
	td := time.Date(y, mo, da, 0, 0, 0, 0, time.UTC)
	d = time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
	switch op {
	case "BEFORE":
		return td.Before(d)
	case "ON":
		return td.Equal(d)
	}
	return !td.Before(d) // SINCE: on or after
}

// writeSearchResult answers with "* SEARCH" (IMAP4rev1 without RETURN) or "* ESEARCH" (RFC 4731, and always in
// IMAP4rev2), and saves the result for "$" when asked (RFC 5182).
func (c *session) writeSearchResult(tag string, args searchArgs, matches []store.Message) {
	byUID := isUID(c.cmdName)
	num := func(m store.Message) uint32 {
		if byUID {
			return m.UID
		}
		return uint32(c.sel.index(m.UID) + 1)
	}
	var highest uint64
	for _, m := range matches {
		highest = max(highest, m.ModSeq)
	}
	withModSeq := args.key.usesModSeq() && len(matches) > 0
	ret := args.ret
	if args.hasRet && len(ret) == 0 {
		ret = []string{"ALL"} // RFC 4731 3.1: RETURN () means ALL
	}
	if slices.Contains(ret, "SAVE") {
		c.saveSearch(ret, matches)
	}
	if !args.hasRet && !c.rev2 {
		b := []byte("* SEARCH")
		for _, m := range matches {
			b = append(b, ' ')
			b = appendUint(b, uint64(num(m)))
		}
		if withModSeq {
			b = fmt.Appendf(b, " (MODSEQ %d)", highest)
		}
		c.writeLine(b)
		return
	}
	if !args.hasRet {
		ret = []string{"ALL"}
	}
	if len(ret) == 1 && ret[0] == "SAVE" {
		return // RFC 5182 2.1: SAVE alone gives no ESEARCH
	}
	b := fmt.Appendf(nil, "* ESEARCH (TAG %s)", appendQuoted(nil, tag))
	if byUID {
		b = append(b, " UID"...)
	}
	nums := make([]uint32, len(matches))
	for i, m := range matches {
		nums[i] = num(m)
	}
	for _, r := range ret {
		switch {
		case r == "MIN" && len(nums) > 0:
			b = fmt.Appendf(b, " MIN %d", nums[0])
		case r == "MAX" && len(nums) > 0:
			b = fmt.Appendf(b, " MAX %d", nums[len(nums)-1])
		case r == "COUNT":
			b = fmt.Appendf(b, " COUNT %d", len(nums))
		case r == "ALL" && len(nums) > 0:
			b = append(b, " ALL "...)
			b = appendSeqList(b, nums)
		}
	}
	if withModSeq {
		b = fmt.Appendf(b, " MODSEQ %d", highest)
	}
	c.writeLine(b)
}

// saveSearch keeps the result for "$": with MIN and/or MAX but neither ALL nor COUNT only those messages
// (RFC 5182 2.1).
func (c *session) saveSearch(ret []string, matches []store.Message) {
	var uids []uint32
	minMaxOnly := !slices.Contains(ret, "ALL") && !slices.Contains(ret, "COUNT") &&
		(slices.Contains(ret, "MIN") || slices.Contains(ret, "MAX"))
	switch {
	case len(matches) == 0:
	case minMaxOnly:
		if slices.Contains(ret, "MIN") {
			uids = append(uids, matches[0].UID)
		}
		if slices.Contains(ret, "MAX") && (len(uids) == 0 || matches[len(matches)-1].UID != uids[0]) {
			uids = append(uids, matches[len(matches)-1].UID)
		}
	default:
		for _, m := range matches {
			uids = append(uids, m.UID)
		}
	}
	c.searchRes = uids
}
