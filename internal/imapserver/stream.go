package imapserver

import (
	"fmt"
	"io"
	"time"
)

// streamMin is the size from which BODY[] / BODY[TEXT] / BODY[part] (and RFC822, RFC822.TEXT) are copied from the blob store
// to the connection instead of being read into memory first: a FETCH of a 50 MiB message costs a buffer, not
// 50 MiB (DESIGN.md: "BODY[] streams the blob").
const streamMin = 256 << 10

// streamChunk is how much is copied between two write-deadline extensions: a slow client may take long over a
// big message, but never long over one chunk.
const streamChunk = 256 << 10

// streamRange reports whether item it is a contiguous range of the blob worth streaming, and which: the whole
// message, the text of the message or of an encapsulated message, or the body of a part (RFC 9051 6.4.5 BODY[],
// BODY[TEXT], BODY[1.2], BODY[2.TEXT]), cut by a partial <offset.count>.
func (f *fetchMsg) streamRange(it fetchItem) (start, n int64, ok bool) {
	if it.kind != fSection || f.blob != nil {
		return 0, 0, false
	}
	end := f.m.Size
	path, spec := it.section.path, it.section.specifier
	if len(path) > 0 || spec != "" {
		if spec != "" && spec != "TEXT" {
			return 0, 0, false
		}
		info, err := f.parsed()
		if err != nil {
			return 0, 0, false
		}
		p := info.FindPart(path)
		switch {
		case p == nil:
			return 0, 0, false
		case spec == "" && len(path) > 0:
			start, end = p.BodyStart, p.BodyEnd
		case len(path) == 0: // TEXT of the message
			start, end = info.Root.BodyStart, info.Root.BodyEnd
		case p.Message != nil: // TEXT of an encapsulated message
			start, end = p.Message.Root.BodyStart, p.Message.Root.BodyEnd
		default:
			return 0, 0, false
		}
		if start < 0 || end > f.m.Size || end < start {
			return 0, 0, false
		}
	}
	if it.partial {
		start = min(start+it.offset, end)
		end = min(end, start+it.count)
	}
	n = end - start
	return start, n, n >= streamMin
}

// streamItem writes what b holds of the response line, then the range as a literal straight from the blob
// store. Once the literal has begun, a failure can only end the session (an ioError): the client is reading
// octets it was promised.
func (c *session) streamItem(b []byte, f *fetchMsg, start, n int64) error {
	rc, err := c.opts().Store.Blobs().Open(c.ctx, f.m.BlobID)
	if err != nil {
		return fmt.Errorf("open blob %s: %w", f.m.BlobID, err)
	}
	defer rc.Close()
	if s, ok := rc.(io.Seeker); ok {
		_, err = s.Seek(start, io.SeekStart)
	} else {
		_, err = io.CopyN(io.Discard, rc, start)
	}
	if err != nil {
		return fmt.Errorf("seek blob %s: %w", f.m.BlobID, err)
	}
	b = append(b, '{')
	b = appendUint(b, uint64(n))
	b = append(b, "}\r\n"...)
	c.bw.Write(b)
	for left := n; left > 0; {
		c.extendWriteDeadline()
		k, err := io.CopyN(c.bw, rc, min(left, streamChunk))
		left -= k
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // the blob is shorter than its recorded size
			}
			return &ioError{fmt.Errorf("stream blob %s: %w", f.m.BlobID, err)}
		}
	}
	return nil
}

// extendWriteDeadline gives the connection another write period.
func (c *session) extendWriteDeadline() {
	c.mu.Lock()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Minute))
	c.mu.Unlock()
}
