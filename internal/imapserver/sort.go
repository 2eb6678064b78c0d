package imapserver

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/postern/postern/internal/mail/msginfo"
	"github.com/postern/postern/internal/store"
)

// sortedMsg is a matched message with its sort keys.
type sortedMsg struct {
	m    store.Message
	msn  int
	keys msginfo.SortKeys
}

// sentDate is the Date: header, or INTERNALDATE without one (RFC 5256 2.2).
func (s *sortedMsg) sentDate() time.Time {
	if s.keys.Date.IsZero() {
		return s.m.InternalDate
	}
	return s.keys.Date
}

// sortCriterion is one SORT key, possibly reversed.
type sortCriterion struct {
	key     string
	reverse bool
}

// cmdSort is SORT and UID SORT (RFC 5256, DISPLAYFROM/DISPLAYTO RFC 5957).
func (c *session) cmdSort(tag string, p *parser) error {
	p.sp()
	var crit []sortCriterion
	p.expect("(")
	for p.ok() && p.peek() != ')' {
		if len(crit) > 0 {
			p.sp()
		}
		var sc sortCriterion
		if p.has("REVERSE ") {
			sc.reverse = true
		}
		switch w := p.word(); w {
		case "ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO":
			sc.key = w
		default:
			p.fail("unknown sort key %s", w)
		}
		crit = append(crit, sc)
	}
	p.expect(")")
	if p.ok() && len(crit) == 0 {
		p.fail("SORT needs a criterion")
	}
	p.sp()
	msgs, err := c.threadOrSortInput(p)
	if err != nil {
		return err
	}
	slices.SortStableFunc(msgs, func(a, b *sortedMsg) int {
		for _, sc := range crit {
			r := compareBy(sc.key, a, b)
			if sc.reverse {
				r = -r
			}
			if r != 0 {
				return r
			}
		}
		return cmp.Compare(a.msn, b.msn) // RFC 5256 3: ties by sequence number
	})
	b := []byte("* SORT")
	for _, s := range msgs {
		b = append(b, ' ')
		b = appendUint(b, uint64(c.resultNumber(s)))
	}
	c.writeLine(b)
	return nil
}

func compareBy(key string, a, b *sortedMsg) int {
	switch key {
	case "ARRIVAL":
		return a.m.InternalDate.Compare(b.m.InternalDate)
	case "DATE":
		return a.sentDate().Compare(b.sentDate())
	case "SIZE":
		return cmp.Compare(a.m.Size, b.m.Size)
	case "SUBJECT":
		return strings.Compare(a.keys.Subject, b.keys.Subject)
	case "FROM":
		return strings.Compare(a.keys.From, b.keys.From)
	case "TO":
		return strings.Compare(a.keys.To, b.keys.To)
	case "CC":
		return strings.Compare(a.keys.Cc, b.keys.Cc)
	case "DISPLAYFROM":
		return strings.Compare(strings.ToLower(a.keys.DisplayFrom), strings.ToLower(b.keys.DisplayFrom))
	case "DISPLAYTO":
		return strings.Compare(strings.ToLower(a.keys.DisplayTo), strings.ToLower(b.keys.DisplayTo))
	}
	return 0
}

// resultNumber is the UID for a UID command, else the sequence number.
func (c *session) resultNumber(s *sortedMsg) uint32 {
	if isUID(c.cmdName) {
		return s.m.UID
	}
	return uint32(s.msn)
}

// threadOrSortInput reads "charset SP search-key..." and returns the matching messages with their sort keys.
func (c *session) threadOrSortInput(p *parser) ([]*sortedMsg, error) {
	charset := strings.ToUpper(p.astring())
	p.sp()
	key := &searchKey{op: "AND"}
	for p.ok() {
		key.kids = append(key.kids, p.searchKey(0))
		if p.atEnd() {
			break
		}
		p.sp()
	}
	p.end()
	if p.err != nil {
		return nil, p.err
	}
	if charset != "UTF-8" && charset != "US-ASCII" {
		return nil, no("BADCHARSET (UTF-8 US-ASCII)", "Unsupported charset")
	}
	matches, err := c.searchMessages(key)
	if err != nil || len(matches) == 0 {
		return nil, err
	}
	uids := make([]uint32, len(matches))
	for i, m := range matches {
		uids[i] = m.UID
	}
	full, err := c.opts().Store.Messages(c.ctx, store.MessageQuery{MailboxID: c.sel.mbox.ID, UIDs: uidSetOf(uids), WithMeta: true})
	if err != nil {
		return nil, storeError(err, "Mailbox")
	}
	out := make([]*sortedMsg, 0, len(full))
	for _, m := range full {
		i := c.sel.index(m.UID)
		if i < 0 {
			continue
		}
		f := &fetchMsg{c: c, m: m}
		info, err := f.parsed()
		if err != nil {
			return nil, err
		}
		out = append(out, &sortedMsg{m: m, msn: i + 1, keys: info.Sort})
	}
	return out, nil
}
