package queue

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/postern/postern/internal/directory"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/mail/msginfo"
	"github.com/postern/postern/internal/maillog"
	"github.com/postern/postern/internal/store"
)

// notify builds the DSN for the notices of m's recipients, addressed to m's sender: local copies for a local
// sender, a new queue entry (from the null sender) for a remote one. It returns nil when nothing is to be sent:
// never for a null sender (RFC 5321 6.1 and RFC 3461 6.2: a notification about a notification could loop
// forever; such a bounce that fails is dropped here, and logged). An error means the DSN could not be built now;
// the caller keeps the notices for a later attempt.
func (q *Queue) notify(ctx context.Context, m store.OutboundMessage, now time.Time) (*store.Delivery, error) {
	var notices []reportRecipient
	for _, r := range m.Recipients {
		if n := r.Notice; n != nil {
			notices = append(notices, reportRecipient{OutboundRecipient: r, Action: n.Action, Status: n.Status, Diagnostic: n.Diagnostic})
		}
	}
	if len(notices) == 0 {
		return nil, nil
	}
	if m.From == "" {
		for _, n := range notices {
			q.opts.MailLog.Log(maillog.Event{QueueID: m.ID, Event: "discarded", To: n.Address, Status: n.Status,
				Detail: "no DSN for the null sender: " + n.Action})
		}
		return nil, nil
	}
	sender, err := mail.ParseAddress(m.From)
	if err != nil {
		return nil, fmt.Errorf("sender %q: %w", m.From, err)
	}
	res, err := q.opts.Directory.Resolve(ctx, sender)
	if errors.Is(err, directory.ErrUnknownRecipient) {
		q.opts.MailLog.Log(maillog.Event{QueueID: m.ID, Event: "discarded", To: m.From, Detail: "DSN: sender is an unknown local address"})
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resolve sender %s: %w", m.From, err)
	}
	rep := report{Hostname: q.opts.Hostname, QueueID: m.ID, To: m.From, EnvID: m.EnvID, Arrival: m.CreatedAt, Date: now,
		RetryUntil: m.CreatedAt.Add(q.opts.Expiry), Recipients: notices, OriginalLen: m.Size}
	// RFC 3461 4.3: RET=HDRS asks for the header only; a delay warning never needs the whole message back.
	// RFC 8689 5: a REQUIRETLS message is bounced as if RET=HDRS was given, whatever its RET says.
	rep.ReturnFull = !strings.EqualFold(m.Ret, "HDRS") && !onlyDelayed(notices) && !m.RequireTLS
	blobs := q.opts.Store.Blobs()
	if orig, err := blobs.Open(ctx, m.BlobID); err == nil {
		defer orig.Close()
		rep.Original = orig
	}
	text, err := buildDSN(rep)
	if err != nil {
		return nil, err
	}
	id := newQueueID(now)
	d := &store.Delivery{QueueID: id, InternalDate: now}
	if len(res.Users) > 0 {
		// RFC 5321 4.4: final delivery adds Return-Path; a DSN's reverse-path is null.
		local := append([]byte("Return-Path: <>\r\n"), text...)
		ref, err := blobs.Put(ctx, bytes.NewReader(local))
		if err != nil {
			return nil, fmt.Errorf("store DSN: %w", err)
		}
		d.Blob = ref
		if info, err := msginfo.Parse(bytes.NewReader(local)); err == nil {
			d.Meta = info.Marshal()
		}
		for _, u := range res.Users {
			d.Local = append(d.Local, store.LocalCopy{UserID: u.ID})
		}
	}
	if len(res.Remote) > 0 {
		ref, err := blobs.Put(ctx, bytes.NewReader(text))
		if err != nil {
			return nil, fmt.Errorf("store DSN: %w", err)
		}
		if d.Blob.ID == "" {
			d.Blob = ref
		}
		// RFC 8689 5: the DSN of a REQUIRETLS message carries its header, so it travels under REQUIRETLS too.
		out := &store.OutboundMessage{ID: id, BlobID: ref.ID, Size: ref.Size, NextAttempt: now, CreatedAt: now, RequireTLS: m.RequireTLS}
		for _, a := range res.Remote {
			out.Recipients = append(out.Recipients, store.OutboundRecipient{Address: a.String(), Status: "queued"})
		}
		d.Outbound = out
	}
	return d, nil
}

func onlyDelayed(ns []reportRecipient) bool {
	for _, n := range ns {
		if n.Action != actionDelayed {
			return false
		}
	}
	return true
}

// logDSN writes the mail log lines of a committed DSN.
func (q *Queue) logDSN(m store.OutboundMessage, d *store.Delivery) {
	if d == nil {
		return
	}
	detail := "DSN for " + m.ID
	if len(d.Local) > 0 {
		q.opts.MailLog.Log(maillog.Event{QueueID: d.QueueID, Event: "delivered", From: "", To: m.From, Size: d.Blob.Size,
			Status: "250 2.0.0", Detail: detail + ", mailbox INBOX"})
	}
	if d.Outbound != nil {
		q.opts.MailLog.Log(maillog.Event{QueueID: d.QueueID, Event: "queued", From: "", To: m.From, Size: d.Outbound.Size,
			Status: "250 2.0.0", Detail: detail})
		q.Kick()
	}
}

// newQueueID returns a short, unique, time-sortable ID like the SMTP server's: 48 bits of milliseconds and 32
// random bits in Crockford base32.
func newQueueID(now time.Time) string {
	const alphabet = "0123456789BCDFGHJKLMNPQRSTVWXYZA"
	var rnd [4]byte
	io.ReadFull(rand.Reader, rnd[:])
	v := uint64(now.UnixMilli())<<32 | uint64(rnd[0])<<24 | uint64(rnd[1])<<16 | uint64(rnd[2])<<8 | uint64(rnd[3])
	var out [16]byte
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = alphabet[v&31]
		v >>= 5
	}
	return strings.TrimLeft(string(out[:]), "0")
}
