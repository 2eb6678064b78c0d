package imapserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/postern/postern/internal/store"
)

// staged is one uploaded message of an APPEND, durable in the blob store, not yet in a mailbox.
type staged struct {
	blob  store.BlobRef
	flags []string
	date  time.Time
	meta  []byte
}

// cmdAppend is APPEND (RFC 9051 6.3.12) with MULTIAPPEND (RFC 3502), LITERAL+ (RFC 7888), APPENDLIMIT
// (RFC 7889), UIDPLUS APPENDUID (RFC 4315), BINARY literal8 (RFC 3516) and UTF8 (RFC 6855 4).
//
// Each message literal streams into the blob store (never held in memory); the messages enter the mailbox only
// after every literal of the command has arrived, each durably, before the tagged OK.
func (c *session) cmdAppend(tag string, p *parser) error {
	p.sp()
	name := p.mailbox()
	if p.err != nil {
		return p.err
	}
	mb, mbErr := c.opts().Store.GetMailbox(c.ctx, c.user.ID, name)
	if mbErr != nil && !errors.Is(mbErr, store.ErrNotFound) {
		return mbErr
	}
	var msgs []staged
	for p.ok() {
		p.sp()
		s, err := c.appendOne(p, mbErr == nil)
		if err != nil {
			return err
		}
		if p.err != nil {
			return p.err
		}
		if mbErr == nil {
			msgs = append(msgs, s)
		}
		if p.atEnd() {
			break
		}
	}
	p.end()
	if p.err != nil {
		return p.err
	}
	if mbErr != nil {
		return no("TRYCREATE", "Mailbox does not exist") // RFC 9051 6.3.12
	}
	var uids []uint32
	var validity uint32
	for _, s := range msgs {
		res, err := c.opts().Store.Append(c.ctx, store.AppendRequest{MailboxID: mb.ID, Blob: s.blob, Flags: s.flags,
			InternalDate: s.date, Meta: s.meta})
		if err != nil {
			c.undoAppend(mb.ID, uids) // RFC 3502: all or nothing
			return storeError(err, "Mailbox")
		}
		uids, validity = append(uids, res.UID), res.UIDValidity
	}
	c.okCode = fmt.Sprintf("APPENDUID %d %s", validity, appendSeqList(nil, uids))
	if c.sel != nil && c.sel.mbox.ID == mb.ID {
		c.pollUpdates(false, true) // RFC 9051 6.3.12: EXISTS for the selected mailbox
	}
	return nil
}

// undoAppend removes the messages of a MULTIAPPEND that failed part way.
func (c *session) undoAppend(mailboxID int64, uids []uint32) {
	if len(uids) == 0 {
		return
	}
	ctx := context.WithoutCancel(c.ctx)
	if _, err := c.opts().Store.Expunge(ctx, store.ExpungeRequest{MailboxID: mailboxID, UIDs: uidSetOf(uids)}); err != nil {
		c.log.Error("undo partial MULTIAPPEND", "err", err)
	}
}

// appendOne reads [flag-list SP] [date-time SP] append-data and stores the literal's octets as a blob (or
// discards them when the mailbox does not exist and the client sent them unasked).
func (c *session) appendOne(p *parser, keep bool) (staged, error) {
	var s staged
	if p.peek() == '(' {
		s.flags = p.flagList(false)
		p.sp()
	}
	if p.peek() == '"' {
		s.date = p.dateTime()
		p.sp()
	}
	utf8Data := false
	if p.has("UTF8 (") {
		utf8Data = true
	}
	n, sync := p.literalHeader(true)
	if p.err != nil {
		return s, nil
	}
	switch {
	case n > c.opts().MaxMessageBytes:
		if sync {
			p.done = true
			return s, no("TOOBIG", fmt.Sprintf("Message larger than APPENDLIMIT %d", c.opts().MaxMessageBytes))
		}
		return s, &literalError{size: n}
	case !keep && sync:
		p.done = true
		return s, no("TRYCREATE", "Mailbox does not exist")
	case n == 0 && sync:
		p.done = true
		return s, no("", "Empty message not appended")
	}
	if sync {
		if err := c.sendContinuation(); err != nil {
			return s, &ioError{err}
		}
	}
	c.conn.SetReadDeadline(time.Now().Add(c.opts().IdleTimeout))
	lr := io.LimitReader(c.br, n)
	if !keep {
		if _, err := io.Copy(io.Discard, lr); err != nil {
			return s, &ioError{err}
		}
	} else {
		cr := &countingReader{r: lr}
		ref, err := c.opts().Store.Blobs().Put(c.ctx, cr)
		if cr.err != nil || cr.n != n {
			// The client went away or stalled mid-literal: the stream cannot be resynchronized.
			return s, &ioError{cmp.Or(cr.err, io.ErrUnexpectedEOF)}
		}
		if err != nil {
			return s, fmt.Errorf("store blob: %w", err)
		}
		s.blob = ref
		if s.meta, err = c.parseMeta(ref); err != nil {
			return s, err
		}
	}
	p.nextLine()
	if utf8Data {
		p.expect(")")
	}
	if n == 0 {
		return s, no("", "Empty message not appended")
	}
	return s, nil
}

// countingReader counts the octets read and keeps a read error other than EOF, so a client that vanished
// mid-literal is told apart from a store failure.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}
