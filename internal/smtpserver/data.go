package smtpserver

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	netmail "net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/internal/delivery"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/maillog"
)

var (
	errBareLF = errors.New("bare LF or CR in message")
	errTooBig = errors.New("message too big")
)

// dotReader reads a DATA body: it removes dot-stuffing (RFC 5321 4.5.2), stops at <CRLF>.<CRLF>, and refuses bare
// LF and bare CR (RFC 5321 2.3.8; the SMTP smuggling attack needs them). Over max octets it keeps reading to the end
// and then fails with errTooBig, so the session stays in step with the client.
//
// A line longer than the reader's buffer is passed on in pieces, never kept whole: RFC 5321 4.5.3.1.6 limits a
// line to 1000 octets, but a client that ignores it must cost neither memory nor time beyond the buffer.
type dotReader struct {
	br    *bufio.Reader
	max   int64
	n     int64
	buf   []byte
	err   error
	onRow func() // called per line or piece (refreshes the read deadline)
	mid   bool   // the last piece ended inside a line
	cr    bool   // ... and with a CR, which the next piece must continue with LF
}

func (d *dotReader) Read(p []byte) (int, error) {
	for len(d.buf) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		d.next()
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

func (d *dotReader) next() {
	if d.onRow != nil {
		d.onRow()
	}
	piece, err := d.br.ReadSlice('\n')
	partial := err == bufio.ErrBufferFull // a long line: this is one piece of it
	if err != nil && !partial {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		d.err = err
		return
	}
	atStart := !d.mid
	if !d.checkBreaks(piece, partial) {
		d.err = errBareLF
		return
	}
	if atStart && piece[0] == '.' {
		if !partial && len(piece) == 3 {
			if d.n > d.max {
				d.err = errTooBig
			} else {
				d.err = io.EOF
			}
			return
		}
		piece = piece[1:]
	}
	d.n += int64(len(piece))
	if d.n > d.max {
		return // discard, keep reading to the end
	}
	d.buf = piece
}

// checkBreaks reports whether every CR and LF in piece is part of a CRLF, carrying a trailing CR of a partial
// piece over to the next one, and records whether the line goes on.
func (d *dotReader) checkBreaks(piece []byte, partial bool) bool {
	if d.cr && piece[0] != '\n' {
		return false // the CR that ended the last piece was bare
	}
	body := piece
	if d.cr {
		body = piece[1:] // its LF completes the last piece's CR
	}
	d.cr, d.mid = false, partial
	if partial {
		if n := len(body); n > 0 && body[n-1] == '\r' {
			d.cr, body = true, body[:n-1]
		}
		return bytes.IndexByte(body, '\r') < 0
	}
	if len(body) == 0 { // just the LF after a carried CR
		return true
	}
	return len(body) >= 2 && body[len(body)-2] == '\r' && bytes.IndexByte(body[:len(body)-2], '\r') < 0
}

// drain consumes the rest of the body (after a failure) so the session stays in step; it reports whether it did.
func (d *dotReader) drain() bool {
	for d.err == nil {
		d.buf = nil
		d.next()
	}
	return d.err == io.EOF || d.err == errTooBig
}

// cmdData receives the message (RFC 5321 4.1.1.4).
func (c *session) cmdData(arg string) error {
	switch {
	case arg != "":
		return c.errReply(reply{501, "5.5.4", "Syntax: DATA"})
	case c.tx == nil:
		return c.errReply(reply{503, "5.5.1", "Error: need MAIL command"})
	case len(c.tx.env.Recipients) == 0:
		return c.errReply(reply{503, "5.5.1", "Error: need RCPT command"})
	case c.tx.chunks != nil:
		return c.errReply(reply{503, "5.5.1", "Error: DATA after BDAT"})
	}
	c.send(reply{354, "", "End data with <CR><LF>.<CR><LF>"})
	if err := c.flush(); err != nil {
		return err
	}
	c.setInData(true)
	defer c.setInData(false)
	dr := &dotReader{br: c.br, max: c.opts().MaxMessageBytes, onRow: c.refreshDeadline}
	r, err := c.accept(dr)
	if dr.err == nil {
		dr.drain() // a failure before the end (e.g. the store): stay in step with the client
	}
	if err != nil {
		switch dr.err {
		case errBareLF:
			// The stream can no longer be parsed reliably: answer and close (Postfix does the same).
			c.send(reply{554, "5.6.0", "Message contains bare LF or bare CR, see RFC 5321 2.3.8"})
			return errCloseSession
		case errTooBig:
			r = reply{552, "5.3.4", "Message size exceeds fixed maximum message size"}
		case nil, io.EOF:
		default: // the client went away mid-DATA: nothing was delivered
			return err
		}
	}
	c.finishTx(r)
	return nil
}

func (c *session) refreshDeadline() {
	c.conn.SetReadDeadline(time.Now().Add(c.opts().ReadTimeout))
}

// finishTx sends the final reply of a transaction and clears it.
func (c *session) finishTx(r reply) {
	c.send(r)
	c.tx = nil
	if c.fs != nil {
		c.fs.Reset()
	}
}

// accept reads the message from r, checks it and delivers it; the reply says what happened.
func (c *session) accept(r io.Reader) (reply, error) {
	tx := c.tx
	if tx.env.QueueID == "" {
		tx.env.QueueID = newQueueID()
	}
	tx.env.Recipients = append([]mail.Recipient(nil), tx.env.Recipients...)
	// The header block is read first so the From: of a submission can be checked before anything is stored.
	br := bufio.NewReaderSize(r, 64<<10)
	header, err := readHeader(br, 256<<10)
	if err != nil {
		return reply{}, err
	}
	if rep := c.checkFromHeader(header); rep != nil {
		_, err := io.Copy(io.Discard, br)
		if err != nil && !errors.Is(err, errTooBig) {
			return reply{}, err
		}
		return *rep, err
	}
	body := io.MultiReader(strings.NewReader(c.received(tx)), bytes.NewReader(header), br)
	if tx.discard {
		n, err := io.Copy(io.Discard, body)
		if err != nil {
			return reply{}, err
		}
		c.mailLog(maillog.Event{QueueID: tx.env.QueueID, Event: "discarded", From: tx.env.From.String(), Size: n, Detail: "access table DISCARD"})
		return reply{250, "2.0.0", "Ok: queued as " + tx.env.QueueID}, nil
	}
	counted := &countingReader{r: body}
	err = c.opts().Deliverer.Deliver(c.ctx, &tx.env, counted, c.fs)
	if err != nil {
		var de *delivery.Error
		if errors.As(err, &de) && !errors.Is(err, errTooBig) && !errors.Is(err, errBareLF) && counted.err == nil {
			c.log.Warn("delivery failed", "queue_id", tx.env.QueueID, "err", err)
			c.mailLog(maillog.Event{QueueID: tx.env.QueueID, Event: "rejected", From: tx.env.From.String(), Size: counted.n,
				Status: strconv.Itoa(de.Code) + " " + de.Enhanced, Detail: de.Message})
			return reply{de.Code, de.Enhanced, de.Message}, nil
		}
		if counted.err != nil {
			return reply{}, counted.err
		}
		return reply{451, "4.3.0", "Error processing message"}, nil
	}
	c.mailLog(maillog.Event{QueueID: tx.env.QueueID, Event: "received", From: tx.env.From.String(), Size: counted.n,
		Status: "250 2.0.0", Detail: fmt.Sprintf("%d recipients", len(tx.env.Recipients))})
	return reply{250, "2.0.0", "Ok: queued as " + tx.env.QueueID}, nil
}

// countingReader counts bytes and remembers the reader's own error (as opposed to the store's).
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// readHeader returns the header block including the blank line (or everything, when the message has no body).
func readHeader(br *bufio.Reader, max int) ([]byte, error) {
	var h []byte
	for len(h) < max {
		line, err := br.ReadSlice('\n')
		h = append(h, line...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			return h, nil
		}
		if err != nil {
			return h, err
		}
		if len(line) <= 2 && strings.TrimRight(string(line), "\r\n") == "" {
			return h, nil
		}
	}
	return h, nil
}

// checkFromHeader: an authenticated submitter may only use their own addresses in From: (RFC 6409 8.1 lets the
// MSA enforce this; it stops one user from impersonating another).
func (c *session) checkFromHeader(header []byte) *reply {
	if c.user == nil {
		return nil
	}
	msg, err := netmail.ReadMessage(bytes.NewReader(append(header, '\r', '\n')))
	if err != nil {
		return nil // unparseable headers are the content filter's business
	}
	list, err := msg.Header.AddressList("From")
	if err != nil {
		if msg.Header.Get("From") == "" {
			return nil
		}
		return &reply{553, "5.7.1", "Sender address not owned by user"}
	}
	for _, a := range list {
		addr, err := mail.ParseAddress(a.Address)
		if err != nil {
			return &reply{553, "5.7.1", "Sender address not owned by user"}
		}
		ok, err := c.opts().Directory.MaySendAs(c.ctx, *c.user, addr)
		if err != nil {
			return &reply{451, "4.3.0", "Temporary lookup failure"}
		}
		if !ok {
			c.mailLog(maillog.Event{QueueID: c.tx.env.QueueID, Event: "rejected", From: addr.String(), Status: "553 5.7.1", Detail: "From: header not owned by user"})
			return &reply{553, "5.7.1", "Sender address not owned by user"}
		}
	}
	return nil
}

// received builds the Received: trace header (RFC 5321 4.4; "with" values from RFC 3848).
func (c *session) received(tx *transaction) string {
	with := "SMTP"
	if c.esmtp {
		with = "ESMTP"
		if c.tls {
			with += "S"
		}
		if c.user != nil {
			with += "A"
		}
	}
	helo := c.helo
	if helo == "" {
		helo = "unknown"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (Postern) with %s id %s", sanitize(helo), c.ip, c.opts().Hostname, with, tx.env.QueueID)
	if len(tx.env.Recipients) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", tx.env.Recipients[0].Addr)
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", time.Now().Format(time.RFC1123Z))
	return b.String()
}

// sanitize keeps a client-supplied HELO name from breaking the header.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 33 || r > 126 || r == '(' || r == ')' || r == ';' {
			return '_'
		}
		return r
	}, s)
}

// newQueueID returns a short, unique, time-sortable ID: 48 bits of milliseconds and 32 random bits in Crockford
// base32.
func newQueueID() string {
	const alphabet = "0123456789BCDFGHJKLMNPQRSTVWXYZA"
	var rnd [4]byte
	rand.Read(rnd[:])
	v := uint64(time.Now().UnixMilli())<<32 | uint64(rnd[0])<<24 | uint64(rnd[1])<<16 | uint64(rnd[2])<<8 | uint64(rnd[3])
	var out [16]byte
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = alphabet[v&31]
		v >>= 5
	}
	return strings.TrimLeft(string(out[:]), "0")
}
