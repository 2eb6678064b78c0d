package imapserver

import (
	"sort"

	"github.com/postern/postern/internal/store"
)

// seqRange is one element of a sequence set; 0 stands for "*" (RFC 9051 9, seq-number).
type seqRange struct{ start, stop uint32 }

// seqSet is a parsed sequence-set, or "$" (RFC 5182 SEARCHRES: the saved search result).
type seqSet struct {
	ranges []seqRange
	saved  bool
}

// seqSet reads sequence-set = (seq-number / seq-range) ["," sequence-set] / "$".
func (p *parser) seqSet() seqSet {
	if p.has("$") {
		return seqSet{saved: true}
	}
	var s seqSet
	for p.ok() {
		a := p.seqNumber()
		b := a
		if p.has(":") {
			b = p.seqNumber()
		}
		if len(s.ranges) < 10000 {
			s.ranges = append(s.ranges, seqRange{a, b})
		} else {
			p.fail("sequence set too long")
		}
		if !p.has(",") {
			break
		}
	}
	return s
}

func (p *parser) seqNumber() uint32 {
	if p.has("*") {
		return 0
	}
	return p.nzNumber()
}

// bounds orders a range with "*" replaced by max.
func (r seqRange) bounds(max uint32) (lo, hi uint32) {
	lo, hi = r.start, r.stop
	if lo == 0 {
		lo = max
	}
	if hi == 0 {
		hi = max
	}
	if lo > hi {
		lo, hi = hi, lo
	}
	return lo, hi
}

// uidSetOf turns ascending UIDs into a store.UIDSet of ranges.
func uidSetOf(uids []uint32) store.UIDSet {
	var set store.UIDSet
	for i := 0; i < len(uids); {
		j := i
		for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
			j++
		}
		set = append(set, store.UIDRange{Start: uids[i], Stop: uids[j]})
		i = j + 1
	}
	return set
}

// sortedUnique sorts UIDs and drops duplicates.
func sortedUnique(u []uint32) []uint32 {
	sort.Slice(u, func(i, j int) bool { return u[i] < u[j] })
	out := u[:0]
	for i, x := range u {
		if i == 0 || x != u[i-1] {
			out = append(out, x)
		}
	}
	return out
}
