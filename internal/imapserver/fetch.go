package imapserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/postern/postern/internal/mail/msginfo"
	"github.com/postern/postern/internal/store"
)

// fetchMsg is one message being answered; its blob and parsed structure are loaded on first use.
type fetchMsg struct {
	c    *session
	m    store.Message
	blob []byte
	info *msginfo.Info
}

// load reads the whole blob.
func (f *fetchMsg) load() ([]byte, error) {
	if f.blob != nil {
		return f.blob, nil
	}
	rc, err := f.c.opts().Store.Blobs().Open(f.c.ctx, f.m.BlobID)
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", f.m.BlobID, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max(f.m.Size, 0)+1<<20))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", f.m.BlobID, err)
	}
	f.blob = b
	return b, nil
}

// cmdFetch is FETCH and UID FETCH (RFC 9051 6.4.5, RFC 3516 BINARY, RFC 7162 CHANGEDSINCE / VANISHED,
// RFC 8514 SAVEDATE).
func (c *session) cmdFetch(tag string, p *parser) error {
	p.sp()
	set := p.seqSet()
	p.sp()
	args := p.fetchArgs()
	p.end()
	if p.err != nil {
		return p.err
	}
	byUID := isUID(c.cmdName)
	if args.vanished && (!byUID || !c.qresync || !args.hasChanged) {
		return bad("", "VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE") // RFC 7162 3.2.6
	}
	needMeta, setSeen, wantFlags := false, false, false
	for _, it := range args.items {
		needMeta = needMeta || it.needsBody()
		setSeen = setSeen || (it.kind == fSection || it.kind == fBinary) && !it.peek
		wantFlags = wantFlags || it.kind == fFlags
		if it.kind == fModSeq {
			c.enableCondstore() // RFC 7162 3.1: FETCH MODSEQ enables CONDSTORE
		}
	}
	if args.hasChanged {
		c.enableCondstore()
	}
	v := c.sel
	idx, uids, err := c.selectedUIDs(set)
	if err != nil {
		return err
	}
	if args.vanished {
		if err := c.fetchVanished(set, args.changedSince); err != nil {
			return err
		}
	}
	if len(uids) == 0 {
		return nil
	}
	msgs, err := c.opts().Store.Messages(c.ctx, store.MessageQuery{MailboxID: v.mbox.ID, UIDs: uidSetOf(uids), WithMeta: needMeta})
	if err != nil {
		return storeError(err, "Mailbox")
	}
	seenChanged := map[uint32]bool{}
	if setSeen && !v.readOnly {
		if msgs, err = c.markSeen(msgs, seenChanged); err != nil {
			return err
		}
	}
	_ = idx
	for _, m := range msgs {
		if args.hasChanged && m.ModSeq <= args.changedSince {
			continue
		}
		i := v.index(m.UID)
		if i < 0 {
			continue
		}
		f := &fetchMsg{c: c, m: m}
		if err := c.writeFetch(f, i+1, args, byUID, seenChanged[m.UID] && !wantFlags); err != nil {
			return err
		}
	}
	return nil
}

// markSeen sets \Seen on the messages that lack it (a non-PEEK body fetch, RFC 9051 6.4.5) before answering, so
// the answer can carry the new flags.
func (c *session) markSeen(msgs []store.Message, changed map[uint32]bool) ([]store.Message, error) {
	var need []uint32
	for _, m := range msgs {
		if !hasFlag(m.Flags, `\Seen`) {
			need = append(need, m.UID)
		}
	}
	if len(need) == 0 {
		return msgs, nil
	}
	res, err := c.opts().Store.StoreFlags(c.ctx, store.StoreFlagsRequest{MailboxID: c.sel.mbox.ID,
		UIDs: uidSetOf(need), Op: store.FlagsAdd, Flags: []string{`\Seen`}})
	if err != nil {
		return nil, storeError(err, "Mailbox")
	}
	byUID := make(map[uint32]store.Message, len(res.Messages))
	for _, m := range res.Messages {
		byUID[m.UID] = m
		changed[m.UID] = true
		c.sel.echo[m.UID] = m.ModSeq
	}
	for i, m := range msgs {
		if n, ok := byUID[m.UID]; ok {
			msgs[i].Flags, msgs[i].ModSeq = n.Flags, n.ModSeq
		}
	}
	return msgs, nil
}

// fetchVanished sends VANISHED (EARLIER) for UIDs of set expunged after modseq (RFC 7162 3.2.6).
func (c *session) fetchVanished(set seqSet, since uint64) error {
	cs, err := c.opts().Store.Changes(c.ctx, c.sel.mbox.ID, since)
	if err != nil {
		return err
	}
	var out []uint32
	for _, u := range cs.Expunged {
		if set.saved || inUIDSet(set, u, c.sel.lastUID()) {
			out = append(out, u)
		}
	}
	if len(out) > 0 {
		c.writeLine(appendUIDSet([]byte("* VANISHED (EARLIER) "), out))
	}
	return nil
}

// writeFetch writes one "* n FETCH (...)" response. Item data goes straight to the output buffer, so a large
// body is not copied twice.
func (c *session) writeFetch(f *fetchMsg, msn int, args fetchArgs, byUID, addFlags bool) error {
	var b []byte
	b = append(b, "* "...)
	b = appendUint(b, uint64(msn))
	b = append(b, " FETCH ("...)
	first := true
	sep := func() {
		if !first {
			b = append(b, ' ')
		}
		first = false
	}
	hasUID, hasModSeq := false, false
	for _, it := range args.items {
		hasUID = hasUID || it.kind == fUID
		hasModSeq = hasModSeq || it.kind == fModSeq
	}
	if byUID && !hasUID { // RFC 9051 6.4.9: UID FETCH always returns UID
		sep()
		b = append(b, "UID "...)
		b = appendUint(b, uint64(f.m.UID))
	}
	if addFlags {
		sep()
		b = append(b, "FLAGS "...)
		b = appendFlags(b, c.flagsOf(f.m))
	}
	if args.hasChanged && !hasModSeq { // RFC 7162 3.1.4.1
		args.items = append(args.items, fetchItem{kind: fModSeq, label: "MODSEQ"})
	}
	streamed := false // part of the line is on its way: an error now must end the session
	for _, it := range args.items {
		sep()
		var err error
		var ioe *ioError
		if start, n, ok := f.streamRange(it); ok {
			b = append(append(b, it.label...), ' ')
			if err = c.streamItem(b, f, start, n); err == nil || errors.As(err, &ioe) {
				streamed = true
			}
			b = b[:0]
		} else {
			b, err = c.appendFetchItem(b, f, it)
		}
		if err != nil {
			if streamed && !errors.As(err, &ioe) {
				err = &ioError{err}
			}
			return err
		}
	}
	b = append(b, ')')
	c.writeLine(b)
	return nil
}

// appendFetchItem appends one item's name and value.
func (c *session) appendFetchItem(b []byte, f *fetchMsg, it fetchItem) ([]byte, error) {
	b = append(b, it.label...)
	b = append(b, ' ')
	switch it.kind {
	case fFlags:
		return appendFlags(b, c.flagsOf(f.m)), nil
	case fUID:
		return appendUint(b, uint64(f.m.UID)), nil
	case fInternalDate:
		return appendDateTime(b, f.m.InternalDate), nil
	case fSize:
		return appendUint(b, uint64(f.m.Size)), nil
	case fModSeq:
		b = append(b, '(')
		b = appendUint(b, f.m.ModSeq)
		return append(b, ')'), nil
	case fSaveDate:
		if f.m.SaveDate.IsZero() {
			return append(b, "NIL"...), nil
		}
		return appendDateTime(b, f.m.SaveDate), nil
	case fEnvelope, fBody, fBodyStructure:
		info, err := f.parsed()
		if err != nil {
			return nil, err
		}
		if it.kind == fEnvelope {
			return msginfo.AppendEnvelope(b, &info.Envelope), nil
		}
		return msginfo.AppendBodyStructure(b, info.Root, it.kind == fBodyStructure), nil
	case fSection:
		data, err := f.sectionBytes(it.section)
		if err != nil {
			return nil, err
		}
		return appendLiteralBytes(b, partialOf(data, it)), nil
	case fBinary, fBinarySize:
		data, err := f.binaryBytes(it.section.path)
		if errors.Is(err, errUnknownCTE) {
			return nil, no("UNKNOWN-CTE", "Cannot decode the content-transfer-encoding of this part") // RFC 3516 4.3
		}
		if err != nil {
			return nil, err
		}
		if it.kind == fBinarySize {
			return appendUint(b, uint64(len(data))), nil
		}
		data = partialOf(data, it)
		if bytes.IndexByte(data, 0) >= 0 {
			b = append(b, '~') // literal8 (RFC 3516 4.2)
		}
		return appendLiteralBytes(b, data), nil
	}
	return b, nil
}

// partialOf cuts <offset.count> out of data (an offset past the end gives "", RFC 9051 6.4.5).
func partialOf(data []byte, it fetchItem) []byte {
	if !it.partial {
		return data
	}
	if it.offset >= int64(len(data)) {
		return nil
	}
	data = data[it.offset:]
	if it.count < int64(len(data)) {
		data = data[:it.count]
	}
	return data
}

func appendLiteralBytes(dst, data []byte) []byte {
	dst = append(dst, '{')
	dst = appendUint(dst, uint64(len(data)))
	dst = append(dst, "}\r\n"...)
	return append(dst, data...)
}
