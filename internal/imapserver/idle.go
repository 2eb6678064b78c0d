package imapserver

import (
	"errors"
	"net"
	"strings"
	"time"
)

// cmdIdle is IDLE (RFC 2177, RFC 9051 6.3.13): changes of the selected mailbox are pushed as they are committed
// (a store.Notifier wake-up, no polling) until the client sends DONE.
func (c *session) cmdIdle(tag string, p *parser) error {
	p.end()
	if p.err != nil {
		return p.err
	}
	if c.sel != nil {
		c.pollUpdates(true, false)
	}
	c.writef("+ idling")
	if err := c.flush(); err != nil {
		return &ioError{err}
	}
	type result struct {
		line    []byte
		tooLong bool
		err     error
	}
	lines := make(chan result, 1)
	c.mu.Lock()
	c.conn.SetReadDeadline(time.Now().Add(c.opts().IdleTimeout))
	c.mu.Unlock()
	go func() { // owned by this call: it always waits for the result below
		line, tooLong, err := c.src.readLine()
		lines <- result{line, tooLong, err}
	}()
	c.setBusy(false) // Shutdown may interrupt an IDLE
	defer c.setBusy(true)
	if c.srv.conns.Closing() {
		c.InterruptIfIdle()
	}
	var notify <-chan struct{}
	if c.sel != nil {
		notify = c.sel.notify
	}
	for {
		select {
		case <-notify:
			c.drainNotify()
			c.pollUpdates(true, true)
			if c.state == stateLogout {
				c.flush()
				<-lines
				return errLogout
			}
			if err := c.flush(); err != nil {
				<-lines
				return &ioError{err}
			}
		case r := <-lines:
			return c.idleEnded(r.line, r.tooLong, r.err)
		}
	}
}

// drainNotify is a no-op: the wake-up was consumed by the select (kept for clarity at the call site).
func (c *session) drainNotify() {}

// idleEnded handles the line that ends IDLE.
func (c *session) idleEnded(line []byte, tooLong bool, err error) error {
	var ne net.Error
	switch {
	case err != nil && c.srv.conns.Closing():
		c.writef("* BYE [UNAVAILABLE] Server shutting down")
		return errLogout
	case err != nil && errors.As(err, &ne) && ne.Timeout():
		c.writef("* BYE Autologout; idle for too long")
		return errLogout
	case err != nil:
		return &ioError{err}
	case tooLong || !strings.EqualFold(strings.TrimSpace(string(line)), "DONE"):
		return bad("", "Expected DONE")
	}
	return nil
}
