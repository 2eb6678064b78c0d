// Package admin holds the management operations behind the CLI (and later the web admin): validation and
// normalization on top of the store, so every front end applies the same rules and stores the same forms
// (addresses as mail.Address.Key, domains in lower-case A-label form, access actions upper-case).
package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/postern/postern/internal/auth"
	"github.com/postern/postern/internal/directory"
	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/store"
)

// Admin runs management operations on a store.
type Admin struct {
	st   store.Store
	hash auth.HashOptions // secrets stored with each password besides its hash
}

// New returns an Admin working on st that stores passwords with auth.DefaultHashOptions.
func New(st store.Store) *Admin { return &Admin{st: st, hash: auth.DefaultHashOptions} }

// WithHashOptions makes a store passwords with the SCRAM and CRAM-MD5 secrets o asks for (the config's [auth]).
func (a *Admin) WithHashOptions(o auth.HashOptions) *Admin {
	a.hash = o
	return a
}

// domainName normalizes a domain given by an admin; address literals are not domains.
func domainName(name string) (string, error) {
	d, err := mail.NormalizeDomain(strings.TrimSpace(name))
	if err != nil || strings.HasPrefix(d, "[") {
		return "", fmt.Errorf("%q is not a domain name", name)
	}
	return d, nil
}

// addressKey parses an address and returns its lookup form (lower-case local part, A-label domain).
func addressKey(address string) (string, error) {
	a, err := mail.ParseAddress(strings.TrimSpace(address))
	if err != nil {
		return "", err
	}
	return a.Key(), nil
}

// mustBeLocal fails with the command to run when domain is not a local domain.
func (a *Admin) mustBeLocal(ctx context.Context, domain string) error {
	ok, err := a.st.HasDomain(ctx, domain)
	if err != nil {
		return fmt.Errorf("look up domain %s: %w", domain, err)
	}
	if !ok {
		return fmt.Errorf("domain %s is not local: run postern domain add %s", domain, domain)
	}
	return nil
}

// AddDomain adds a local domain (IDN names are stored in A-label form).
func (a *Admin) AddDomain(ctx context.Context, name string) error {
	d, err := domainName(name)
	if err != nil {
		return err
	}
	return a.st.AddDomain(ctx, d)
}

// RemoveDomain removes a domain that has no users or aliases left.
func (a *Admin) RemoveDomain(ctx context.Context, name string) error {
	d, err := domainName(name)
	if err != nil {
		return err
	}
	return a.st.RemoveDomain(ctx, d)
}

// ListDomains lists local domains.
func (a *Admin) ListDomains(ctx context.Context) ([]store.Domain, error) {
	return a.st.ListDomains(ctx)
}

// AddUser creates a user of a local domain with a hashed password (auth.HashPassword: argon2id) and a quota in
// bytes (0: unlimited). The store creates the default mailboxes.
func (a *Admin) AddUser(ctx context.Context, address, password string, quota int64) (store.User, error) {
	addr, err := mail.ParseAddress(strings.TrimSpace(address))
	if err != nil {
		return store.User{}, err
	}
	if err := a.mustBeLocal(ctx, addr.Domain); err != nil {
		return store.User{}, err
	}
	if quota < 0 {
		return store.User{}, fmt.Errorf("quota %d: must not be negative", quota)
	}
	hash, err := hashPassword(password, a.hash)
	if err != nil {
		return store.User{}, err
	}
	return a.st.AddUser(ctx, store.User{Address: addr.Key(), PasswordHash: hash, QuotaBytes: quota})
}

func hashPassword(password string, o auth.HashOptions) (string, error) {
	if password == "" {
		return "", errors.New("the password must not be empty")
	}
	hash, err := auth.HashPasswordOptions(password, o)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return hash, nil
}

// SetPassword changes a user's password.
func (a *Admin) SetPassword(ctx context.Context, address, password string) error {
	key, err := addressKey(address)
	if err != nil {
		return err
	}
	hash, err := hashPassword(password, a.hash)
	if err != nil {
		return err
	}
	return a.st.SetPassword(ctx, key, hash)
}

// SetQuota changes a user's quota in bytes (0: unlimited).
func (a *Admin) SetQuota(ctx context.Context, address string, quota int64) error {
	key, err := addressKey(address)
	if err != nil {
		return err
	}
	if quota < 0 {
		return fmt.Errorf("quota %d: must not be negative", quota)
	}
	return a.st.SetQuota(ctx, key, quota)
}

// ListUsers lists the users of a domain ("" for all).
func (a *Admin) ListUsers(ctx context.Context, domain string) ([]store.User, error) {
	if domain == "" {
		return a.st.ListUsers(ctx, "")
	}
	d, err := domainName(domain)
	if err != nil {
		return nil, err
	}
	return a.st.ListUsers(ctx, d)
}

// RemoveUser deletes a user and their mail.
func (a *Admin) RemoveUser(ctx context.Context, address string) error {
	key, err := addressKey(address)
	if err != nil {
		return err
	}
	return a.st.RemoveUser(ctx, key)
}

// aliasKey normalizes the source of an alias: an address of a local domain, or "@domain" (catch-all, or with
// "@otherdomain" targets a virtusertable-style domain mapping).
func (a *Admin) aliasKey(ctx context.Context, address string) (string, error) {
	address = strings.TrimSpace(address)
	if dom, ok := strings.CutPrefix(address, "@"); ok {
		d, err := domainName(dom)
		if err != nil {
			return "", err
		}
		return "@" + d, a.mustBeLocal(ctx, d)
	}
	addr, err := mail.ParseAddress(address)
	if err != nil {
		return "", err
	}
	return addr.Key(), a.mustBeLocal(ctx, addr.Domain)
}

// aliasTarget normalizes one target: an address, local or remote (its local part keeps its case: a remote
// server may care), or "@domain" to keep the local part and change the domain.
func aliasTarget(t string) (string, error) {
	t = strings.TrimSpace(t)
	if dom, ok := strings.CutPrefix(t, "@"); ok {
		d, err := domainName(dom)
		if err != nil {
			return "", fmt.Errorf("target %q: %w", t, err)
		}
		return "@" + d, nil
	}
	addr, err := mail.ParseAddress(t)
	if err != nil {
		return "", fmt.Errorf("target %q: %w", t, err)
	}
	return addr.String(), nil
}

// AddAlias maps address to targets, replacing the targets of an existing alias. address is an address of a local
// domain or "@domain" (catch-all); a target is an address (local or remote) or "@otherdomain" (local part kept).
func (a *Admin) AddAlias(ctx context.Context, address string, targets ...string) error {
	if len(targets) == 0 {
		return errors.New("an alias needs at least one target")
	}
	key, err := a.aliasKey(ctx, address)
	if err != nil {
		return err
	}
	norm := make([]string, 0, len(targets))
	for _, t := range targets {
		n, err := aliasTarget(t)
		if err != nil {
			return err
		}
		if strings.EqualFold(n, key) {
			return fmt.Errorf("alias %s cannot point at itself", key)
		}
		if !slices.Contains(norm, n) {
			norm = append(norm, n)
		}
	}
	return a.st.SetAlias(ctx, store.Alias{Address: key, Targets: norm})
}

// ListAliases lists aliases.
func (a *Admin) ListAliases(ctx context.Context) ([]store.Alias, error) { return a.st.ListAliases(ctx) }

// RemoveAlias deletes an alias (address or "@domain").
func (a *Admin) RemoveAlias(ctx context.Context, address string) error {
	address = strings.TrimSpace(address)
	var key string
	if dom, ok := strings.CutPrefix(address, "@"); ok {
		d, err := domainName(dom)
		if err != nil {
			return err
		}
		key = "@" + d
	} else {
		var err error
		if key, err = addressKey(address); err != nil {
			return err
		}
	}
	return a.st.RemoveAlias(ctx, key)
}

// AddAccess adds or replaces an access rule (directory.ValidateAccess says what PATTERN and ACTION may be).
func (a *Admin) AddAccess(ctx context.Context, pattern, action string) error {
	pattern = strings.TrimSpace(pattern)
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
	return a.st.RemoveAccess(ctx, strings.ToLower(strings.TrimSpace(pattern)))
}

// MailboxList returns each mailbox of a user with its counters, INBOX first, then by name.
func (a *Admin) MailboxList(ctx context.Context, address string) ([]store.MailboxStatus, error) {
	key, err := addressKey(address)
	if err != nil {
		return nil, err
	}
	u, err := a.st.GetUser(ctx, key)
	if err != nil {
		return nil, err
	}
	mbs, err := a.st.ListMailboxes(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("mailboxes of %s: %w", key, err)
	}
	slices.SortStableFunc(mbs, func(x, y store.MailboxStatus) int {
		switch xi, yi := x.Name == "INBOX", y.Name == "INBOX"; {
		case xi && !yi:
			return -1
		case yi && !xi:
			return 1
		}
		return strings.Compare(x.Name, y.Name)
	})
	return mbs, nil
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
func (a *Admin) QueueRetry(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("queue retry needs an ID (queue flush retries everything)")
	}
	return a.st.RetryQueued(ctx, id)
}

// QueueFlush makes every entry due now.
func (a *Admin) QueueFlush(ctx context.Context) error { return a.st.RetryQueued(ctx, "") }

// QueueRemove deletes an entry.
func (a *Admin) QueueRemove(ctx context.Context, id string) error { return a.st.RemoveQueued(ctx, id) }
