// Package delivery takes an accepted message from a protocol server and commits it: local recipients get one
// shared blob (with Return-Path) and a copy in their INBOX, remote recipients go into the durable outbound queue —
// all in one atomic, durable store transaction, before the caller may answer 250.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/postern/postern/internal/directory"
	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/mail/msginfo"
	"github.com/postern/postern/internal/maillog"
	"github.com/postern/postern/internal/store"
)

// Resolver expands a recipient (implemented by *directory.Directory).
type Resolver interface {
	Resolve(ctx context.Context, rcpt mail.Address) (directory.Resolution, error)
}

// Store is what delivery needs of the store.
type Store interface {
	Blobs() store.BlobStore
	Deliver(ctx context.Context, d *store.Delivery) error
}

// Options configure an Agent.
type Options struct {
	Directory Resolver
	Store     Store
	Hostname  string
	// SpoolDir holds messages larger than SpoolMemory while the DATA-stage checks read them ("": the system's
	// temporary directory); SpoolMemory defaults to 4 MiB.
	SpoolDir    string
	SpoolMemory int64
	// Classifier is each local user's own spam filter (bayes); nil: none.
	Classifier filter.UserClassifier
	MailLog    *maillog.Logger
	Logger     *slog.Logger
}

// Agent delivers accepted messages.
type Agent struct {
	opts Options
}

// Error is a delivery failure with the SMTP reply it maps to (RFC 5321 4.2, RFC 3463).
type Error struct {
	Code     int
	Enhanced string
	Message  string
	Err      error // the cause, for the log only
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s %s: %v", e.Code, e.Enhanced, e.Message, e.Err)
}
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports a 4xx failure.
func (e *Error) Temporary() bool { return e.Code/100 == 4 }

// New returns an Agent.
func New(o Options) (*Agent, error) {
	if o.Directory == nil || o.Store == nil {
		return nil, errors.New("delivery: directory and store are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Agent{opts: o}, nil
}

// plan is where one message goes.
type plan struct {
	users  []store.User
	remote []store.OutboundRecipient
	// mailbox is the mailbox of a user's copy when it is not INBOX (the Junk mailbox).
	mailbox map[int64]string
}

// Deliver reads body and commits it for every recipient of env. It returns nil only after the commit is durable.
// fs is the SMTP connection's filter session (nil: no checks): the message is then spooled, the DATA stage runs
// on it, a refusal becomes an *Error with the checks' reply, and the stored copy carries the checks' headers
// (Authentication-Results first, forged ones removed) and goes into Junk where the outcome or a user's own
// classifier says so.
func (a *Agent) Deliver(ctx context.Context, env *mail.Envelope, body io.Reader, fs *filter.Session) error {
	p, err := a.plan(ctx, env)
	if err != nil {
		return err
	}
	if len(p.users) == 0 && len(p.remote) == 0 {
		io.Copy(io.Discard, body)
		return &Error{Code: 550, Enhanced: "5.1.1", Message: "No deliverable recipients", Err: directory.ErrUnknownRecipient}
	}
	if fs == nil {
		return a.commit(ctx, env, p, body)
	}
	sp, err := newSpool(body, a.opts.SpoolDir, a.opts.SpoolMemory)
	if err != nil {
		return &Error{Code: 451, Enhanced: "4.3.0", Message: "Error processing message", Err: err}
	}
	defer sp.close()
	msg, parsed := sp.message()
	o := fs.Data(ctx, msg)
	if o.Verdict.Action >= filter.Tempfail {
		code, enh, text := o.Verdict.Reply("data")
		return &Error{Code: code, Enhanced: enh, Message: text, Err: fmt.Errorf("filter: %s", o.Verdict.Reason)}
	}
	a.sortJunk(ctx, env, &p, msg, o)
	r, err := sp.open()
	if err != nil {
		return &Error{Code: 451, Enhanced: "4.3.0", Message: "Error processing message", Err: err}
	}
	defer r.Close()
	if !parsed && o.StripAuthResults != "" {
		// WriteMessage needs a parseable header block to remove forged Authentication-Results; this one is not
		// (a body with no header at all, a line without a colon), so a line-wise pass does it.
		r = stripAuthResults(r, o.StripAuthResults)
		defer r.Close() // stops the stripper when the commit ends early
		o.StripAuthResults = ""
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := filter.WriteMessage(pw, r, "", o)
		pw.CloseWithError(err)
	}()
	err = a.commit(ctx, env, p, pr)
	pr.Close() // a commit that stopped reading early unblocks the writer
	<-done
	return err
}

// commit stores body for the plan's local users (one blob, with Return-Path) and queues it for its remote
// recipients, in one durable store transaction.
func (a *Agent) commit(ctx context.Context, env *mail.Envelope, p plan, body io.Reader) error {
	blobs := a.opts.Store.Blobs()
	d := &store.Delivery{QueueID: env.QueueID, InternalDate: env.ReceivedAt}
	if d.InternalDate.IsZero() {
		d.InternalDate = time.Now()
	}
	var written []string
	cleanup := func() {
		for _, id := range written {
			blobs.Delete(context.WithoutCancel(ctx), id)
		}
	}
	prefix := ""
	if len(p.users) > 0 {
		// RFC 5321 4.4: the final delivery adds Return-Path with the reverse-path.
		prefix = "Return-Path: <" + env.From.String() + ">\r\n"
	}
	ref, err := blobs.Put(ctx, io.MultiReader(strings.NewReader(prefix), body))
	if err != nil {
		return &Error{Code: 451, Enhanced: "4.3.0", Message: "Error storing message", Err: err}
	}
	written = append(written, ref.ID)
	d.Blob = ref
	if len(p.users) > 0 {
		d.Meta = a.parse(ctx, ref.ID)
	}
	for _, u := range p.users {
		c := store.LocalCopy{UserID: u.ID, Mailbox: p.mailbox[u.ID]}
		if c.Mailbox != "" {
			c.Flags = []string{"$Junk"} // the IANA keyword (RFC 5788) clients show as "marked as junk"
		}
		d.Local = append(d.Local, c)
	}
	if len(p.remote) > 0 {
		out, err := a.outbound(ctx, env, ref, len(prefix), p.remote)
		if err != nil {
			cleanup()
			return err
		}
		written = append(written, out.BlobID)
		d.Outbound = out
	}
	if err := a.opts.Store.Deliver(ctx, d); err != nil {
		cleanup()
		if errors.Is(err, store.ErrQuotaExceeded) {
			return &Error{Code: 552, Enhanced: "5.2.2", Message: "Mailbox full", Err: err}
		}
		return &Error{Code: 451, Enhanced: "4.3.0", Message: "Error storing message", Err: err}
	}
	a.logDone(env, p, ref.Size)
	return nil
}

// parse reads the stored blob back (it is in the page cache) and parses it once for IMAP: envelope, body
// structure and part offsets are kept with the blob so FETCH never re-parses it (DESIGN.md, the store). Parsing
// never rejects mail: on a read error the message is stored without the cache and IMAP parses it when asked.
func (a *Agent) parse(ctx context.Context, blobID string) []byte {
	r, err := a.opts.Store.Blobs().Open(ctx, blobID)
	if err != nil {
		a.opts.Logger.Warn("parse stored message", "blob", blobID, "err", err)
		return nil
	}
	defer r.Close()
	info, err := msginfo.Parse(r)
	if err != nil {
		a.opts.Logger.Warn("parse stored message", "blob", blobID, "err", err)
		return nil
	}
	return info.Marshal()
}

// plan resolves every envelope recipient.
func (a *Agent) plan(ctx context.Context, env *mail.Envelope) (plan, error) {
	var p plan
	seenUser, seenRemote := map[int64]bool{}, map[string]bool{}
	for _, r := range env.Recipients {
		res, err := a.opts.Directory.Resolve(ctx, r.Addr)
		if errors.Is(err, directory.ErrUnknownRecipient) {
			// The alias or user vanished between RCPT and the end of DATA.
			a.opts.MailLog.Log(maillog.Event{QueueID: env.QueueID, Event: "rejected", From: env.From.String(), To: r.Addr.String(),
				Status: "550 5.1.1", Detail: "recipient no longer exists"})
			continue
		}
		if err != nil {
			return p, &Error{Code: 451, Enhanced: "4.3.0", Message: "Temporary lookup failure", Err: err}
		}
		for _, u := range res.Users {
			if !seenUser[u.ID] {
				seenUser[u.ID] = true
				p.users = append(p.users, u)
			}
		}
		for _, x := range res.Remote {
			if seenRemote[x.Key()] {
				continue
			}
			seenRemote[x.Key()] = true
			or := store.OutboundRecipient{Address: x.String(), Status: "queued", ORcpt: r.ORcpt}
			if x.Key() == r.Addr.Key() {
				or.Notify = r.Notify
			} else if or.ORcpt == "" {
				or.ORcpt = "rfc822;" + r.Addr.String() // RFC 3461 4.2: the original recipient of an expanded alias
			}
			p.remote = append(p.remote, or)
		}
	}
	return p, nil
}

// outbound writes the queue copy (without Return-Path) from the stored local blob and builds the queue entry.
func (a *Agent) outbound(ctx context.Context, env *mail.Envelope, local store.BlobRef, skip int, rcpts []store.OutboundRecipient) (*store.OutboundMessage, error) {
	blobs := a.opts.Store.Blobs()
	ref := local
	if skip > 0 {
		r, err := blobs.Open(ctx, local.ID)
		if err != nil {
			return nil, &Error{Code: 451, Enhanced: "4.3.0", Message: "Error storing message", Err: err}
		}
		defer r.Close()
		if _, err := io.CopyN(io.Discard, r, int64(skip)); err != nil {
			return nil, &Error{Code: 451, Enhanced: "4.3.0", Message: "Error storing message", Err: err}
		}
		if ref, err = blobs.Put(ctx, r); err != nil {
			return nil, &Error{Code: 451, Enhanced: "4.3.0", Message: "Error storing message", Err: err}
		}
	}
	return &store.OutboundMessage{
		ID: env.QueueID, From: env.From.String(), Recipients: rcpts, BlobID: ref.ID, Size: ref.Size,
		Ret: env.Ret, EnvID: env.EnvID, AuthUser: env.AuthUser, RequireTLS: env.RequireTLS, NextAttempt: time.Now(), CreatedAt: time.Now(),
	}, nil
}

func (a *Agent) logDone(env *mail.Envelope, p plan, size int64) {
	for _, u := range p.users {
		box := p.mailbox[u.ID]
		if box == "" {
			box = "INBOX"
		}
		a.opts.MailLog.Log(maillog.Event{QueueID: env.QueueID, Event: "delivered", From: env.From.String(), To: u.Address,
			Size: size, Status: "250 2.0.0", Detail: "mailbox " + box})
	}
	for _, r := range p.remote {
		a.opts.MailLog.Log(maillog.Event{QueueID: env.QueueID, Event: "queued", From: env.From.String(), To: r.Address,
			Size: size, Status: "250 2.0.0", Detail: "outbound queue"})
	}
}
