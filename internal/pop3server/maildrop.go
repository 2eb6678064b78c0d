package pop3server

import (
	"context"
	"fmt"
	"strings"

	"github.com/postern/postern/internal/store"
)

// maildrop is the session's snapshot of INBOX (RFC 1939 7: message numbers stay fixed for the session).
type maildrop struct {
	mailbox store.Mailbox
	msgs    []message // by ascending UID; message number = index + 1
}

// message is one message of the snapshot and what the session did with it.
type message struct {
	uid       uint32
	size      int64
	blobID    string
	seen      bool // \Seen already at login
	deleted   bool // DELE: removed at QUIT
	retrieved bool // RETR: marked \Seen at QUIT
}

// loadMaildrop takes the snapshot: only the message list, no body.
func loadMaildrop(ctx context.Context, st Store, mb store.Mailbox) (*maildrop, error) {
	msgs, err := st.Messages(ctx, store.MessageQuery{MailboxID: mb.ID})
	if err != nil {
		return nil, fmt.Errorf("list messages of mailbox %d: %w", mb.ID, err)
	}
	d := &maildrop{mailbox: mb, msgs: make([]message, len(msgs))}
	for i, m := range msgs {
		d.msgs[i] = message{uid: m.UID, size: m.Size, blobID: m.BlobID, seen: hasFlag(m.Flags, `\Seen`)}
	}
	return d, nil
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}

// uidl is the unique-id listing of a message (RFC 1939 7: 1 to 70 characters in 0x21..0x7E): Dovecot's default
// format %08Xu%08Xv, the UID and then the UIDVALIDITY in upper-case hex.
func (d *maildrop) uidl(m *message) string {
	return fmt.Sprintf("%08X%08X", m.uid, d.mailbox.UIDValidity)
}

// stat counts the messages not marked deleted and their octets (RFC 1939 5).
func (d *maildrop) stat() (n int, size int64) {
	for _, m := range d.msgs {
		if !m.deleted {
			n++
			size += m.size
		}
	}
	return n, size
}

// get returns message number arg. RFC 1939 5: a message marked deleted may not be referred to.
func (d *maildrop) get(arg string) (*message, int, string) {
	n, ok := parseNumber(arg)
	switch {
	case !ok:
		return nil, 0, "Invalid message number"
	case n < 1 || n > len(d.msgs):
		return nil, 0, "No such message"
	case d.msgs[n-1].deleted:
		return nil, 0, fmt.Sprintf("Message %d already deleted", n)
	}
	return &d.msgs[n-1], n, ""
}

// changes lists the UIDs to expunge and the UIDs to mark \Seen in the UPDATE state.
func (d *maildrop) changes() (deleted, seen store.UIDSet) {
	for _, m := range d.msgs {
		switch {
		case m.deleted:
			deleted = addUID(deleted, m.uid)
		case m.retrieved && !m.seen:
			seen = addUID(seen, m.uid)
		}
	}
	return deleted, seen
}

// addUID appends uid (ascending) to s, extending the last range when it is the next UID.
func addUID(s store.UIDSet, uid uint32) store.UIDSet {
	if n := len(s); n > 0 && s[n-1].Stop+1 == uid {
		s[n-1].Stop = uid
		return s
	}
	return append(s, store.UIDRange{Start: uid, Stop: uid})
}
