package msginfo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Storage format: a version byte, then the Info as uvarint-prefixed strings and uvarints (offsets as
// deltas). Sender and Reply-To equal to From are stored as a marker. About 150 bytes for a simple message.
const marshalVersion = 1

// ErrCorrupt is wrapped by Unmarshal errors.
var ErrCorrupt = errors.New("msginfo: corrupt stored info")

// maxUnmarshalDepth bounds the nesting Unmarshal accepts (Parse nests at most maxDepth).
const maxUnmarshalDepth = 2*maxDepth + 4

// Marshal encodes i compactly for storage (store.Delivery.Meta, AppendRequest.Meta).
func (i *Info) Marshal() []byte {
	e := enc{b: make([]byte, 0, 256)}
	e.b = append(e.b, marshalVersion)
	e.envelope(&i.Envelope)
	e.part(i.Root)
	e.sortKeys(&i.Sort)
	return e.b
}

type enc struct{ b []byte }

func (e *enc) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) int(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) str(s string)  { e.uint(uint64(len(s))); e.b = append(e.b, s...) }

func (e *enc) strs(l []string) {
	e.uint(uint64(len(l)))
	for _, s := range l {
		e.str(s)
	}
}

func (e *enc) params(l [][2]string) {
	e.uint(uint64(len(l)))
	for _, kv := range l {
		e.str(kv[0])
		e.str(kv[1])
	}
}

func (e *enc) addrs(l []Address) {
	e.uint(uint64(len(l)))
	for _, a := range l {
		e.str(a.Name)
		e.str(a.Adl)
		e.str(a.Mailbox)
		e.str(a.Host)
		e.str(a.Group)
	}
}

// addrsOrFrom writes 0 for a list equal to From (and not empty), else 1 and the list.
func (e *enc) addrsOrFrom(l, from []Address) {
	if len(l) > 0 && sameAddrs(l, from) {
		e.uint(0)
		return
	}
	e.uint(1)
	e.addrs(l)
}

func sameAddrs(a, b []Address) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (e *enc) envelope(v *Envelope) {
	e.str(v.Date)
	e.str(v.Subject)
	e.str(v.MessageID)
	e.str(v.InReplyTo)
	e.addrs(v.From)
	e.addrsOrFrom(v.Sender, v.From)
	e.addrsOrFrom(v.ReplyTo, v.From)
	e.addrs(v.To)
	e.addrs(v.Cc)
	e.addrs(v.Bcc)
}

const (
	flagMultipart = 1 << iota
	flagMessage
)

func (e *enc) part(p *Part) {
	var flags uint64
	if p.Multipart {
		flags |= flagMultipart
	}
	if p.Message != nil {
		flags |= flagMessage
	}
	e.uint(flags)
	for _, s := range []string{p.Type, p.Subtype, p.ID, p.Description, p.Encoding, p.MD5, p.Disposition,
		p.Location} {
		e.str(s)
	}
	e.params(p.Params)
	e.params(p.DispParams)
	e.strs(p.Language)
	e.uint(uint64(p.HeaderStart))
	e.uint(uint64(p.HeaderEnd - p.HeaderStart))
	e.uint(uint64(p.BodyStart - p.HeaderEnd))
	e.uint(uint64(p.BodyEnd - p.BodyStart))
	e.uint(uint64(p.Lines))
	if p.Multipart {
		e.uint(uint64(len(p.Children)))
		for _, c := range p.Children {
			e.part(c)
		}
	}
	if p.Message != nil {
		e.envelope(&p.Message.Envelope)
		e.part(p.Message.Root)
	}
}

func (e *enc) sortKeys(k *SortKeys) {
	if k.Date.IsZero() {
		e.uint(0)
	} else {
		_, off := k.Date.Zone()
		e.uint(1)
		e.int(k.Date.Unix())
		e.uint(uint64(k.Date.Nanosecond()))
		e.int(int64(off))
	}
	reply := uint64(0)
	if k.SubjectReply {
		reply = 1
	}
	e.uint(reply)
	for _, s := range []string{k.Subject, k.From, k.To, k.Cc, k.DisplayFrom, k.DisplayTo, k.MessageID,
		k.InReplyTo} {
		e.str(s)
	}
	e.strs(k.References)
}

// Unmarshal decodes what Marshal produced. Corrupt input gives an error wrapping ErrCorrupt, never a panic.
func Unmarshal(b []byte) (*Info, error) {
	if len(b) == 0 || b[0] != marshalVersion {
		return nil, fmt.Errorf("%w: unknown version", ErrCorrupt)
	}
	d := dec{b: b[1:]}
	i := &Info{}
	i.Envelope = d.envelope()
	i.Root = d.part(0)
	i.Sort = d.sortKeys()
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return i, nil
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *dec) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) int() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// offset reads a uvarint that must fit an offset.
func (d *dec) offset() int64 {
	v := d.uint()
	if v > 1<<52 {
		d.fail("offset out of range")
		return 0
	}
	return int64(v)
}

// count reads a list length; each element takes at least min bytes.
func (d *dec) count(min int) int {
	n := d.uint()
	if n > uint64(len(d.b)/min) {
		d.fail("bad count")
		return 0
	}
	return int(n)
}

func (d *dec) str() string {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail("bad string length")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *dec) strs() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	l := make([]string, n)
	for k := range l {
		l[k] = d.str()
	}
	return l
}

func (d *dec) params() [][2]string {
	n := d.count(2)
	if n == 0 {
		return nil
	}
	l := make([][2]string, n)
	for k := range l {
		l[k] = [2]string{d.str(), d.str()}
	}
	return l
}

func (d *dec) addrs() []Address {
	n := d.count(5)
	if n == 0 {
		return nil
	}
	l := make([]Address, n)
	for k := range l {
		l[k] = Address{Name: d.str(), Adl: d.str(), Mailbox: d.str(), Host: d.str(), Group: d.str()}
	}
	return l
}

func (d *dec) addrsOrFrom(from []Address) []Address {
	if d.uint() == 0 {
		return from
	}
	return d.addrs()
}

func (d *dec) envelope() Envelope {
	v := Envelope{Date: d.str(), Subject: d.str(), MessageID: d.str(), InReplyTo: d.str()}
	v.From = d.addrs()
	v.Sender = d.addrsOrFrom(v.From)
	v.ReplyTo = d.addrsOrFrom(v.From)
	v.To, v.Cc, v.Bcc = d.addrs(), d.addrs(), d.addrs()
	return v
}

func (d *dec) part(depth int) *Part {
	p := &Part{}
	if depth > maxUnmarshalDepth {
		d.fail("nested too deep")
		return p
	}
	flags := d.uint()
	p.Type, p.Subtype, p.ID, p.Description = d.str(), d.str(), d.str(), d.str()
	p.Encoding, p.MD5, p.Disposition, p.Location = d.str(), d.str(), d.str(), d.str()
	p.Params, p.DispParams, p.Language = d.params(), d.params(), d.strs()
	p.HeaderStart = d.offset()
	p.HeaderEnd = p.HeaderStart + d.offset()
	p.BodyStart = p.HeaderEnd + d.offset()
	p.BodyEnd = p.BodyStart + d.offset()
	p.Size = p.BodyEnd - p.BodyStart
	p.Lines = d.offset()
	if flags&flagMultipart != 0 {
		p.Multipart = true
		n := d.count(16)
		p.Children = make([]*Part, 0, n)
		for k := 0; k < n && d.err == nil; k++ {
			p.Children = append(p.Children, d.part(depth+1))
		}
	}
	if flags&flagMessage != 0 && d.err == nil {
		m := &Info{Envelope: d.envelope()}
		m.Root = d.part(depth + 1)
		p.Message = m
	}
	return p
}

func (d *dec) sortKeys() SortKeys {
	var k SortKeys
	if d.uint() == 1 {
		sec, nsec, off := d.int(), d.uint(), d.int()
		if nsec >= 1e9 || off < -24*3600 || off > 24*3600 {
			d.fail("bad date")
		} else {
			k.Date = time.Unix(sec, int64(nsec)).In(time.FixedZone("", int(off)))
		}
	}
	k.SubjectReply = d.uint() == 1
	k.Subject, k.From, k.To, k.Cc = d.str(), d.str(), d.str(), d.str()
	k.DisplayFrom, k.DisplayTo, k.MessageID, k.InReplyTo = d.str(), d.str(), d.str(), d.str()
	k.References = d.strs()
	return k
}
