// Package admin holds the management operations behind the CLI (and later the web admin): validation and
// normalization on top of the store, so every front end applies the same rules.
package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/postern/postern/internal/auth"
	"github.com/postern/postern/internal/directory"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/store"
)

// Admin runs management operations on a store.
type Admin struct {
	st store.Store
}

// New returns an Admin.
func New(st store.Store) *Admin { return &Admin{st: st} }

// AddDomain adds a local domain (IDN names are stored in A-label form).
func (a *Admin) AddDomain(ctx context.Context, name string) error {
	d, err := mail.NormalizeDomain(name)
	if err != nil || strings.HasPrefix(d, "[") {
		return fmt.Errorf("%q is not a domain name", name)
	}
	return a.st.AddDomain(ctx, d)
}

// RemoveDomain removes a domain without users or aliases.
func (a *Admin) RemoveDomain(ctx context.Context, name string) error {
	d, err := mail.NormalizeDomain(name)
	if err != nil {
		return err
	}
	return a.st.RemoveDomain(ctx, d)
}

// ListDomains lists local domains.
func (a *Admin) ListDomains(ctx context.Context) ([]store.Domain, error) {
	return a.st.ListDomains(ctx)
}

func (a *Admin) localAddress(ctx context.Context, address string) (mail.Address, error) {
	addr, err := mail.ParseAddress(address)
	if err != nil {
		return addr, err
	}
	ok, err := a.st.HasDomain(ctx, addr.Domain)
	if err != nil {
		return addr, err
	}
	if !ok {
		return addr, fmt.Errorf("domain %s is not local: run postern domain add %s", addr.Domain, addr.Domain)
	}
	return addr, nil
}

// AddUser creates a user with an argon2id password hash.
func (a *Admin) AddUser(ctx context.Context, address, password string, quota int64) (store.User, error) {
	addr, err := a.localAddress(ctx, address)
	if err != nil {
		return store.User{}, err
	}
	if password == "" {
		return store.User{}, errors.New("empty password")
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return store.User{}, err
	}
	return a.st.AddUser(ctx, store.User{Address: addr.Key(), PasswordHash: hash, QuotaBytes: quota})
}

// SetPassword changes a user's password.
func (a *Admin) SetPassword(ctx context.Context, address, password string) error {
	if password == "" {
		return errors.New("empty password")
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return err
	}
	return a.st.SetPassword(ctx, strings.ToLower(address), hash)
}

// ListUsers lists users of a domain ("" for all).
func (a *Admin) ListUsers(ctx context.Context, domain string) ([]store.User, error) {
	return a.st.ListUsers(ctx, strings.ToLower(domain))
}

// RemoveUser deletes a user and their mail.
func (a *Admin) RemoveUser(ctx context.Context, address string) error {
	return a.st.RemoveUser(ctx, strings.ToLower(address))
}

// AddAlias maps address ("@domain" for a catch-all or domain mapping) to targets (addresses or "@domain").
func (a *Admin) AddAlias(ctx context.Context, address string, targets ...string) error {
	if len(targets) == 0 {
		return errors.New("an alias needs at least one target")
	}
	var key string
	if dom, ok := strings.CutPrefix(address, "@"); ok {
		d, err := mail.NormalizeDomain(dom)
		if err != nil {
			return err
		}
		if ok, err := a.st.HasDomain(ctx, d); err != nil || !ok {
			return fmt.Errorf("domain %s is not local: run postern domain add %s", d, d)
		}
		key = "@" + d
	} else {
		addr, err := a.localAddress(ctx, address)
		if err != nil {
			return err
		}
		key = addr.Key()
	}
	var norm []string
	for _, t := range targets {
		if dom, ok := strings.CutPrefix(t, "@"); ok {
			d, err := mail.NormalizeDomain(dom)
			if err != nil {
				return fmt.Errorf("target %q: %w", t, err)
			}
			norm = append(norm, "@"+d)
			continue
		}
		ta, err := mail.ParseAddress(t)
		if err != nil {
			return fmt.Errorf("target %q: %w", t, err)
		}
		norm = append(norm, ta.String())
	}
	return a.st.SetAlias(ctx, store.Alias{Address: key, Targets: norm})
}

// ListAliases lists aliases.
func (a *Admin) ListAliases(ctx context.Context) ([]store.Alias, error) { return a.st.ListAliases(ctx) }

// RemoveAlias deletes an alias.
func (a *Admin) RemoveAlias(ctx context.Context, address string) error {
	return a.st.RemoveAlias(ctx, strings.ToLower(address))
}

// AddAccess adds or replaces an access rule.
func (a *Admin) AddAccess(ctx context.Context, pattern, action string) error {
	if err := directory.ValidateAccess(pattern, action); err != nil {
		return err
	}
	return a.st.SetAccess(ctx, store.AccessRule{Pattern: strings.ToLower(pattern), Action: strings.ToUpper(action)})
}

// ListAccess lists the access table.
func (a *Admin) ListAccess(ctx context.Context) ([]store.AccessRule, error) {
	return a.st.ListAccess(ctx)
}

// RemoveAccess deletes an access rule.
func (a *Admin) RemoveAccess(ctx context.Context, pattern string) error {
	return a.st.RemoveAccess(ctx, strings.ToLower(pattern))
}

// MailboxList returns each mailbox of a user with its counters, INBOX first.
func (a *Admin) MailboxList(ctx context.Context, address string) ([]store.MailboxStatus, error) {
	u, err := a.st.GetUser(ctx, strings.ToLower(address))
	if err != nil {
		return nil, err
	}
	return a.st.ListMailboxes(ctx, u.ID)
}

// QueueList lists the outbound queue.
func (a *Admin) QueueList(ctx context.Context) ([]store.OutboundMessage, error) {
	return a.st.ListQueue(ctx)
}

// QueueShow returns one queue entry.
func (a *Admin) QueueShow(ctx context.Context, id string) (store.OutboundMessage, error) {
	return a.st.GetQueued(ctx, id)
}

// QueueRetry makes an entry due now.
func (a *Admin) QueueRetry(ctx context.Context, id string) error { return a.st.RetryQueued(ctx, id) }

// QueueFlush makes every entry due now.
func (a *Admin) QueueFlush(ctx context.Context) error { return a.st.RetryQueued(ctx, "") }

// QueueRemove deletes an entry.
func (a *Admin) QueueRemove(ctx context.Context, id string) error { return a.st.RemoveQueued(ctx, id) }
