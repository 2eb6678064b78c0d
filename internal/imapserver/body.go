package imapserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/postern/postern/internal/mail/msginfo"
	"github.com/postern/postern/internal/store"
)

// Message content for FETCH and SEARCH comes from mail/msginfo: the structure parsed once at delivery or APPEND
// (store.Message.Meta) and byte slices of the blob. A message stored without Meta (or with Meta in a format
// this version cannot read) is parsed from its blob once per use.

var errUnknownCTE = errors.New("unknown content-transfer-encoding")

// parsed returns the message's structure.
func (f *fetchMsg) parsed() (*msginfo.Info, error) {
	if f.info != nil {
		return f.info, nil
	}
	if len(f.m.Meta) > 0 {
		if info, err := msginfo.Unmarshal(f.m.Meta); err == nil {
			f.info = info
			return info, nil
		}
	}
	msg, err := f.load()
	if err != nil {
		return nil, err
	}
	info, err := msginfo.Parse(bytes.NewReader(msg))
	if err != nil {
		return nil, err
	}
	f.info = info
	return info, nil
}

// sectionBytes returns BODY[section]; a part that does not exist is an empty string, as in Dovecot.
func (f *fetchMsg) sectionBytes(s sectionSpec) ([]byte, error) {
	msg, err := f.load()
	if err != nil {
		return nil, err
	}
	if len(s.path) == 0 && s.specifier == "" {
		return msg, nil // the whole message needs no structure
	}
	info, err := f.parsed()
	if err != nil {
		return nil, err
	}
	b, err := info.SectionBytes(msg, msginfo.Section{Path: s.path, Specifier: s.specifier, Fields: s.fields})
	if errors.Is(err, msginfo.ErrNoSuchPart) {
		return nil, nil
	}
	return b, err
}

// binaryBytes returns the decoded content of a part (RFC 3516).
func (f *fetchMsg) binaryBytes(path []int) ([]byte, error) {
	msg, err := f.load()
	if err != nil {
		return nil, err
	}
	info, err := f.parsed()
	if err != nil {
		return nil, err
	}
	b, err := info.BinaryBytes(msg, path)
	switch {
	case errors.Is(err, msginfo.ErrNoSuchPart):
		return nil, nil
	case errors.Is(err, msginfo.ErrUnknownCTE):
		return nil, errUnknownCTE
	}
	return b, err
}

// sentDate is the parsed Date: header (zero when missing).
func (f *fetchMsg) sentDate() (time.Time, error) {
	info, err := f.parsed()
	if err != nil {
		return time.Time{}, err
	}
	return info.Sort.Date, nil
}

// contains evaluates SEARCH HEADER / BODY / TEXT on decoded text (RFC 9051 6.4.4). A header search (FROM,
// SUBJECT, HEADER ...) reads only the header block of the blob, not the whole message.
func (f *fetchMsg) contains(op, field, value string) (bool, error) {
	info, err := f.parsed()
	if err != nil {
		return false, err
	}
	if op == "HEADER" {
		h, err := f.headerBlock(info)
		if err != nil {
			return false, err
		}
		return msginfo.HeaderContains(h, info, field, value), nil
	}
	msg, err := f.load()
	if err != nil {
		return false, err
	}
	switch op {
	case "BODY":
		return bodyContains(msg, info, value), nil
	}
	return msginfo.HeaderContains(msg, info, "", value) || bodyContains(msg, info, value) ||
		mimeHeadersContain(msg, info.Root, value), nil
}

// headerBlock returns the blob from its start through the end of the message's header block (the whole blob
// when it is already loaded or the offsets are unknown).
func (f *fetchMsg) headerBlock(info *msginfo.Info) ([]byte, error) {
	end := info.Root.HeaderEnd
	if f.blob != nil || end <= 0 || end >= f.m.Size {
		return f.load()
	}
	rc, err := f.c.opts().Store.Blobs().Open(f.c.ctx, f.m.BlobID)
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", f.m.BlobID, err)
	}
	defer rc.Close()
	h := make([]byte, end)
	if _, err := io.ReadFull(rc, h); err != nil {
		return nil, fmt.Errorf("read blob %s: %w", f.m.BlobID, err)
	}
	return h, nil
}

// mimeHeadersContain reports whether the header of a part below p, or of an encapsulated message, holds needle:
// TEXT searches "the header (including MIME header fields)" (RFC 9051 6.4.4).
func mimeHeadersContain(msg []byte, p *msginfo.Part, needle string) bool {
	for _, c := range p.Children {
		if msginfo.HeaderContains(msg, &msginfo.Info{Root: c}, "", needle) || mimeHeadersContain(msg, c, needle) {
			return true
		}
	}
	if m := p.Message; m != nil {
		return msginfo.HeaderContains(msg, m, "", needle) || mimeHeadersContain(msg, m.Root, needle)
	}
	return false
}

// bodyContains is SEARCH BODY (RFC 9051 6.4.4: the body of the message): the decoded text parts, and the
// preamble and epilogue of each multipart, which are body text too. The headers of encapsulated messages are
// not searched (MIME headers are not body text), as James and Dovecot do.
func bodyContains(msg []byte, info *msginfo.Info, needle string) bool {
	if msginfo.BodyContains(msg, info, needle) {
		return true
	}
	n := bytes.ToLower([]byte(needle))
	var walk func(p *msginfo.Part) bool
	walk = func(p *msginfo.Part) bool {
		switch {
		case p.Message != nil:
			return walk(p.Message.Root)
		case !p.Multipart || len(p.Children) == 0:
			return false
		}
		delim := []byte("--" + p.Param("boundary"))
		first, last := p.Children[0], p.Children[len(p.Children)-1]
		return outsideParts(span(msg, p.BodyStart, first.HeaderStart), delim, n) ||
			outsideParts(span(msg, last.BodyEnd, p.BodyEnd), delim, n) || slices.ContainsFunc(p.Children, walk)
	}
	return walk(info.Root)
}

// outsideParts reports whether a preamble or epilogue holds needle (lower case) on a line that is not a
// boundary delimiter.
func outsideParts(text, delim, needle []byte) bool {
	for line := range bytes.Lines(text) {
		if !bytes.HasPrefix(line, delim) && bytes.Contains(bytes.ToLower(line), needle) {
			return true
		}
	}
	return false
}

// span is msg[start:end] clamped to msg.
func span(msg []byte, start, end int64) []byte {
	start, end = min(max(start, 0), int64(len(msg))), min(max(end, 0), int64(len(msg)))
	if start > end {
		return nil
	}
	return msg[start:end]
}

// parseMeta parses an uploaded blob for the store (APPEND), reading it back from the blob store.
func (c *session) parseMeta(ref store.BlobRef) ([]byte, error) {
	rc, err := c.opts().Store.Blobs().Open(c.ctx, ref.ID)
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", ref.ID, err)
	}
	defer rc.Close()
	info, err := msginfo.Parse(rc)
	if err != nil {
		return nil, fmt.Errorf("parse blob %s: %w", ref.ID, err)
	}
	return info.Marshal(), nil
}

// parseMetaBytes parses a message held in memory.
func parseMetaBytes(b []byte) ([]byte, error) {
	info, err := msginfo.Parse(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return info.Marshal(), nil
}
