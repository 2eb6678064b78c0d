package smtpserver

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// bdat is a message arriving in BDAT chunks (RFC 3030): the chunks feed a pipe that a delivery goroutine reads,
// so a large message is streamed to the store, not held in memory.
type bdat struct {
	pw     *io.PipeWriter
	result chan bdatResult
	n      int64
	tooBig bool
}

type bdatResult struct {
	r   reply
	err error
}

func (b *bdat) abort() {
	b.pw.CloseWithError(errors.New("transaction aborted"))
	<-b.result
}

// cmdBdat handles "BDAT size [LAST]".
func (c *session) cmdBdat(arg string) error {
	f := strings.Fields(arg)
	if len(f) == 0 || len(f) > 2 || len(f) == 2 && !strings.EqualFold(f[1], "LAST") {
		return c.errReply(reply{501, "5.5.4", "Syntax: BDAT size [LAST]"})
	}
	size, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || size < 0 {
		return c.errReply(reply{501, "5.5.4", "Syntax: BDAT size [LAST]"})
	}
	last := len(f) == 2
	if c.tx == nil || len(c.tx.env.Recipients) == 0 {
		// The chunk is on its way regardless: read it so the session stays in step (RFC 3030 2).
		if _, err := io.CopyN(io.Discard, c.br, size); err != nil {
			return err
		}
		return c.errReply(reply{503, "5.5.1", "Error: need MAIL and RCPT commands"})
	}
	c.setInData(true)
	defer c.setInData(false)
	b := c.tx.chunks
	if b == nil {
		pr, pw := io.Pipe()
		b = &bdat{pw: pw, result: make(chan bdatResult, 1)}
		c.tx.chunks = b
		go func() {
			r, err := c.accept(pr)
			pr.CloseWithError(fmt.Errorf("delivery ended"))
			b.result <- bdatResult{r, err}
		}()
	}
	b.n += size
	if b.n > c.opts().MaxMessageBytes {
		b.tooBig = true
	}
	if b.tooBig {
		_, err = io.CopyN(io.Discard, c.br, size)
	} else {
		dr := &deadlineReader{c: c}
		var n int64
		n, err = io.CopyN(b.pw, dr, size)
		if err != nil && dr.err == nil {
			// The delivery side stopped early (it failed): discard the rest of the chunk; LAST reports it.
			_, err = io.CopyN(io.Discard, c.br, size-n)
		}
	}
	if err != nil {
		b.abort()
		c.tx = nil
		return err
	}
	if !last {
		c.send(reply{250, "2.0.0", fmt.Sprintf("%d octets received", size)})
		return nil
	}
	if b.tooBig {
		b.abort()
		c.finishTx(reply{552, "5.3.4", "Message size exceeds fixed maximum message size"})
		return nil
	}
	b.pw.Close()
	res := <-b.result
	if res.err != nil && !errors.Is(res.err, io.EOF) {
		c.finishTx(reply{451, "4.3.0", "Error processing message"})
		return nil
	}
	c.finishTx(res.r)
	return nil
}

// deadlineReader refreshes the read deadline as a chunk streams in and remembers a connection error.
type deadlineReader struct {
	c   *session
	err error
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.c.refreshDeadline()
	n, err := d.c.br.Read(p)
	if err != nil {
		d.err = err
	}
	return n, err
}
