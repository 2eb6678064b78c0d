package pop3server

import (
	"errors"
	"fmt"

	"github.com/postern/postern/internal/store"
)

// cmdStat answers the drop listing (RFC 1939 5).
func (c *session) cmdStat(cmd command) error {
	if len(cmd.args) != 0 {
		return c.fail("Syntax: STAT")
	}
	n, size := c.drop.stat()
	c.ok(fmt.Sprintf("%d %d", n, size))
	return nil
}

// cmdList answers scan listings: of one message, or of every message not marked deleted (RFC 1939 5).
func (c *session) cmdList(cmd command) error {
	return c.listing(cmd, "LIST", func(n int, m *message) string { return fmt.Sprintf("%d %d", n, m.size) })
}

// cmdUidl answers unique-id listings (RFC 1939 7).
func (c *session) cmdUidl(cmd command) error {
	return c.listing(cmd, "UIDL", func(n int, m *message) string { return fmt.Sprintf("%d %s", n, c.drop.uidl(m)) })
}

// listing is the shared shape of LIST and UIDL.
func (c *session) listing(cmd command, verb string, line func(int, *message) string) error {
	switch len(cmd.args) {
	case 0:
		var lines []string
		for i := range c.drop.msgs {
			if m := &c.drop.msgs[i]; !m.deleted {
				lines = append(lines, line(i+1, m))
			}
		}
		n, size := c.drop.stat()
		c.multi(fmt.Sprintf("%d messages (%d octets)", n, size), lines)
		return nil
	case 1:
		m, n, why := c.drop.get(cmd.args[0])
		if m == nil {
			c.errResp(why)
			return nil
		}
		c.ok(line(n, m))
		return nil
	}
	return c.fail("Syntax: " + verb + " [msg]")
}

// cmdRetr sends a message (RFC 1939 5). The message is marked \Seen at QUIT.
func (c *session) cmdRetr(cmd command) error {
	if len(cmd.args) != 1 {
		return c.fail("Syntax: RETR msg")
	}
	m, _, why := c.drop.get(cmd.args[0])
	if m == nil {
		c.errResp(why)
		return nil
	}
	sent, err := c.sendMessage(m, -1, fmt.Sprintf("%d octets", m.size))
	if sent {
		m.retrieved = true
	}
	return err
}

// cmdTop sends the header and the first lines of the body (RFC 1939 7). It does not mark the message \Seen.
func (c *session) cmdTop(cmd command) error {
	if len(cmd.args) != 2 {
		return c.fail("Syntax: TOP msg lines")
	}
	lines, ok := parseNumber(cmd.args[1])
	if !ok {
		return c.fail("Invalid number of lines")
	}
	m, _, why := c.drop.get(cmd.args[0])
	if m == nil {
		c.errResp(why)
		return nil
	}
	_, err := c.sendMessage(m, lines, "Top of message follows")
	return err
}

// sendMessage streams a message as a multi-line response; bodyLines < 0 sends it all. It reports whether the
// message was sent. An error while streaming ends the session: the response cannot be turned into -ERR any more.
func (c *session) sendMessage(m *message, bodyLines int, text string) (bool, error) {
	rc, err := c.opts().Blobs.Open(c.ctx, m.blobID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.errResp("Message was removed by another session")
			return false, nil
		}
		c.log.Error("open message", "uid", m.uid, "blob", m.blobID, "err", err)
		c.errResp(codeSysTemp + "Unable to read message, try again later")
		return false, nil
	}
	defer rc.Close()
	c.ok(text)
	n, err := copyMessage(c.bw, rc, bodyLines)
	if err != nil {
		c.log.Warn("sending message", "uid", m.uid, "err", err)
		return false, err
	}
	if bodyLines < 0 && n != m.size {
		c.log.Debug("message sent with a size other than stored (bare LF or no final line end)",
			"uid", m.uid, "stored", m.size, "sent", n)
	}
	c.bw.WriteString(".\r\n")
	return true, nil
}

// cmdDele marks a message deleted; it is removed at QUIT (RFC 1939 5).
func (c *session) cmdDele(cmd command) error {
	if len(cmd.args) != 1 {
		return c.fail("Syntax: DELE msg")
	}
	m, n, why := c.drop.get(cmd.args[0])
	if m == nil {
		c.errResp(why)
		return nil
	}
	m.deleted = true
	c.ok(fmt.Sprintf("Message %d deleted", n))
	return nil
}

// cmdRset unmarks every deleted message (RFC 1939 5) and forgets the retrievals, so QUIT then changes nothing.
func (c *session) cmdRset(cmd command) error {
	if len(cmd.args) != 0 {
		return c.fail("Syntax: RSET")
	}
	for i := range c.drop.msgs {
		c.drop.msgs[i].deleted, c.drop.msgs[i].retrieved = false, false
	}
	n, size := c.drop.stat()
	c.ok(fmt.Sprintf("maildrop has %d messages (%d octets)", n, size))
	return nil
}

// cmdQuit enters the UPDATE state (RFC 1939 6): retrieved messages get \Seen, then the messages marked deleted
// are expunged in one store call, whatever their flags. Both are durable before +OK. On failure nothing was
// deleted (the expunge is one transaction) and the client is told so.
func (c *session) cmdQuit(cmd command) error {
	if len(cmd.args) != 0 {
		return c.fail("Syntax: QUIT")
	}
	deleted, seen := c.drop.changes()
	mbID := c.drop.mailbox.ID
	if len(seen) > 0 {
		_, err := c.opts().Store.StoreFlags(c.ctx, store.StoreFlagsRequest{MailboxID: mbID, UIDs: seen,
			Op: store.FlagsAdd, Flags: []string{`\Seen`}})
		if err != nil {
			c.log.Error("update: mark seen", "err", err)
			c.errResp(codeSysTemp + "Unable to update maildrop; no message deleted")
			return errCloseSession
		}
	}
	if len(deleted) > 0 {
		res, err := c.opts().Store.Expunge(c.ctx, store.ExpungeRequest{MailboxID: mbID, UIDs: deleted})
		if err != nil {
			c.log.Error("update: expunge", "err", err)
			c.errResp(codeSysTemp + "Some deleted messages not removed")
			return errCloseSession
		}
		c.log.Info("expunged", "count", len(res.UIDs))
	}
	n, _ := c.drop.stat()
	c.ok(fmt.Sprintf("Postern POP3 server signing off (%d messages left)", n))
	return errCloseSession
}
