package delivery

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/authres"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/maillog"
	"github.com/postern/postern/internal/store"
)

// junkMailbox is the mailbox spam is filed into; every user gets it with the \Junk attribute (RFC 6154).
const junkMailbox = "Junk"

// specialUser is implemented by stores that find a user's mailbox by its SPECIAL-USE attribute, so spam follows
// the \Junk mailbox when the user renamed it.
type specialUser interface {
	MailboxBySpecialUse(ctx context.Context, userID int64, use string) (string, error)
}

// mailboxGetter is implemented by stores that can tell whether a user's mailbox exists.
type mailboxGetter interface {
	GetMailbox(ctx context.Context, userID int64, name string) (store.Mailbox, error)
}

// sortJunk decides, per local user, whether the copy goes into Junk: when the checks' outcome says so (score at
// or above junk_score, DMARC quarantine), or else when the user's own classifier calls it spam. The copy goes into
// the user's \Junk mailbox (RFC 6154), whatever its name; a user without one gets it in INBOX, where the X-Spam
// headers and the $Junk keyword still mark it.
func (a *Agent) sortJunk(ctx context.Context, env *mail.Envelope, p *plan, m *filter.Message, o filter.Outcome) {
	for _, u := range p.users {
		why := ""
		switch {
		case o.Junk:
			why = "spam score or policy"
		case a.opts.Classifier != nil:
			spam, prob, err := a.opts.Classifier.Classify(ctx, u.ID, m)
			if err != nil {
				a.opts.Logger.Warn("classify", "queue_id", env.QueueID, "user", u.Address, "err", err)
				continue
			}
			if !spam {
				continue
			}
			why = "user's classifier"
			a.opts.Logger.Debug("classified as spam", "queue_id", env.QueueID, "user", u.Address, "probability", prob)
		default:
			continue
		}
		box := a.junkFor(ctx, u.ID)
		if box == "" {
			continue
		}
		if p.mailbox == nil {
			p.mailbox = map[int64]string{}
		}
		p.mailbox[u.ID] = box
		a.opts.MailLog.Log(maillog.Event{QueueID: env.QueueID, Event: "filtered", From: env.From.String(), To: u.Address,
			Detail: "into Junk: " + why})
	}
}

// junkFor returns the name of the user's Junk mailbox, "" when there is none.
func (a *Agent) junkFor(ctx context.Context, userID int64) string {
	var err error
	name := junkMailbox
	switch st := a.opts.Store.(type) {
	case specialUser:
		name, err = st.MailboxBySpecialUse(ctx, userID, `\Junk`)
	case mailboxGetter:
		_, err = st.GetMailbox(ctx, userID, junkMailbox)
	}
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			a.opts.Logger.Warn("look up Junk mailbox", "user_id", userID, "err", err)
		}
		return ""
	}
	return name
}

// stripAuthResults copies r, leaving out the Authentication-Results fields (with their continuation lines) of
// the leading header-like lines that name authservID (RFC 8601 5) — for messages whose header block does not
// parse, where filter.WriteMessage cannot do it.
func stripAuthResults(r io.Reader, authservID string) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		br := bufio.NewReader(r)
		w := bufio.NewWriter(pw)
		var field []string // the lines of the field being read
		flush := func() {
			if len(field) > 0 && !claimsUs(strings.Join(field, ""), authservID) {
				for _, l := range field {
					w.WriteString(l)
				}
			}
			field = nil
		}
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				switch {
				case line[0] == ' ' || line[0] == '\t':
					if len(field) > 0 {
						field = append(field, line)
						break
					}
					w.WriteString(line)
				case strings.Contains(line, ":") && strings.TrimRight(line, "\r\n") != "":
					flush()
					field = append(field, line)
				default: // the end of the header-like lines
					flush()
					w.WriteString(line)
					io.Copy(w, br)
					err = io.EOF
				}
			}
			if err != nil {
				flush()
				if err == io.EOF {
					err = w.Flush()
				}
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr
}

// claimsUs reports whether a raw header field is an Authentication-Results field naming authservID (or one that
// does not parse but mentions it: it cannot be told from a forgery of ours).
func claimsUs(field, authservID string) bool {
	name, value, ok := strings.Cut(field, ":")
	if !ok || !strings.EqualFold(strings.TrimSpace(name), "Authentication-Results") {
		return false
	}
	value = strings.Join(strings.Fields(value), " ")
	id, _, err := authres.Parse(value)
	if err != nil {
		return strings.Contains(strings.ToLower(value), strings.ToLower(authservID))
	}
	return strings.EqualFold(id, authservID)
}
