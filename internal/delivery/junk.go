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

// mailboxGetter is implemented by stores that can tell whether a user's mailbox exists.
type mailboxGetter interface {
	GetMailbox(ctx context.Context, userID int64, name string) (store.Mailbox, error)
}

// sortJunk decides, per local user, whether the copy goes into Junk: when the checks' outcome says so (score at
// or above junk_score, DMARC quarantine), or else when the user's own classifier calls it spam. A user without a
// Junk mailbox (deleted by hand) gets the copy in INBOX; the X-Spam headers still mark it.
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
		if !a.hasMailbox(ctx, u.ID, junkMailbox) {
			continue
		}
		if p.mailbox == nil {
			p.mailbox = map[int64]string{}
		}
		p.mailbox[u.ID] = junkMailbox
		a.opts.MailLog.Log(maillog.Event{QueueID: env.QueueID, Event: "filtered", From: env.From.String(), To: u.Address,
			Detail: "into Junk: " + why})
	}
}

func (a *Agent) hasMailbox(ctx context.Context, userID int64, name string) bool {
	g, ok := a.opts.Store.(mailboxGetter)
	if !ok {
		return true // the store will say at commit time
	}
	_, err := g.GetMailbox(ctx, userID, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.opts.Logger.Warn("look up Junk mailbox", "user_id", userID, "err", err)
	}
	return err == nil
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
