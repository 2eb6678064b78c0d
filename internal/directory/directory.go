package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/store"
)

// maxDepth bounds alias expansion (loops and absurd chains), like Postfix's virtual_alias_recursion_limit.
const maxDepth = 10

// Store is what the directory reads: a subset of store.DirectoryStore. Addresses passed to GetUser and GetAlias
// are lookup keys (mail.Address.Key form); a catch-all alias is stored under "@domain". A missing user or alias
// is an error wrapping store.ErrNotFound.
type Store interface {
	HasDomain(ctx context.Context, name string) (bool, error)
	GetUser(ctx context.Context, address string) (store.User, error)
	GetAlias(ctx context.Context, address string) (store.Alias, error)
	ListAccess(ctx context.Context) ([]store.AccessRule, error)
}

// Options configure a Directory.
type Options struct {
	Store              Store
	Logger             *slog.Logger
	RecipientDelimiter string // separates the +tag in user+tag@domain; default "+"
}

// Directory resolves recipients and access rules. It holds no cache, so changes made by the CLI are seen at once.
type Directory struct {
	opts Options
}

// New returns a Directory.
func New(o Options) (*Directory, error) {
	if o.Store == nil {
		return nil, errors.New("directory: no store")
	}
	if o.RecipientDelimiter == "" {
		o.RecipientDelimiter = "+"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Directory{opts: o}, nil
}

// IsLocalDomain reports whether domain is served here.
func (d *Directory) IsLocalDomain(ctx context.Context, domain string) (bool, error) {
	name := strings.ToLower(strings.TrimSuffix(domain, "."))
	if n, err := mail.NormalizeDomain(name); err == nil {
		name = n // U-labels -> A-labels, as the store keeps them
	}
	ok, err := d.opts.Store.HasDomain(ctx, name)
	if err != nil {
		return false, fmt.Errorf("look up domain %q: %w", name, err)
	}
	return ok, nil
}

// CheckRecipient says whether rcpt is local and deliverable (true, nil), local and unknown
// (true, an error wrapping ErrUnknownRecipient) or remote (false, nil).
func (d *Directory) CheckRecipient(ctx context.Context, rcpt mail.Address) (local bool, err error) {
	local, err = d.IsLocalDomain(ctx, rcpt.Domain)
	if err != nil || !local {
		return local, err
	}
	_, err = d.Resolve(ctx, rcpt)
	return true, err
}

// Resolve expands rcpt into local users and remote addresses. For a local domain it tries, in order: an exact
// alias, a user, the address without its +tag (alias or user), then the domain's catch-all alias "@domain".
// Alias targets are resolved in turn (a target naming a user ends there), to a depth of 10 with loop detection.
// A recipient that leads nowhere is an error wrapping ErrUnknownRecipient; a non-local rcpt is returned as Remote.
func (d *Directory) Resolve(ctx context.Context, rcpt mail.Address) (Resolution, error) {
	r := &resolver{
		d: d, seenUser: map[int64]bool{}, seenRemote: map[string]bool{},
		visiting: map[string]bool{}, expanded: map[string]int{},
	}
	if err := r.resolve(ctx, rcpt, 0); err != nil {
		return Resolution{}, err
	}
	if len(r.res.Users) == 0 && len(r.res.Remote) == 0 { // e.g. an alias loop with no way out
		return Resolution{}, fmt.Errorf("%s: %w", rcpt, ErrUnknownRecipient)
	}
	return r.res, nil
}

// resolver holds the state of one Resolve call.
type resolver struct {
	d          *Directory
	res        Resolution
	seenUser   map[int64]bool
	seenRemote map[string]bool
	visiting   map[string]bool // local addresses on the current expansion path (loop detection)
	expanded   map[string]int  // local addresses already expanded -> the depth they were expanded at
}

func (r *resolver) addUser(u store.User) {
	if !r.seenUser[u.ID] {
		r.seenUser[u.ID] = true
		r.res.Users = append(r.res.Users, u)
	}
}

func (r *resolver) addRemote(a mail.Address) {
	if k := a.Key(); !r.seenRemote[k] {
		r.seenRemote[k] = true
		r.res.Remote = append(r.res.Remote, a)
	}
}

// resolve adds what a leads to. depth 0 is the recipient itself; deeper calls are alias targets.
func (r *resolver) resolve(ctx context.Context, a mail.Address, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("alias expansion of %s deeper than %d: %w", a, maxDepth, ErrUnknownRecipient)
	}
	local, err := r.d.IsLocalDomain(ctx, a.Domain)
	if err != nil {
		return err
	}
	if !local {
		r.addRemote(a)
		return nil
	}
	key := a.Key()
	if depth > 0 {
		// A target naming a user ends there, so "alice -> alice, alice@elsewhere" keeps a copy for alice.
		if found, err := r.user(ctx, key); err != nil || found {
			return err
		}
	}
	if d, ok := r.expanded[key]; r.visiting[key] || ok && d <= depth {
		return nil // a loop, or already expanded (with at least as much depth left): nothing new here
	}
	r.visiting[key] = true
	defer delete(r.visiting, key)
	r.expanded[key] = depth
	return r.expand(ctx, a, key, depth)
}

// expand applies the lookup order to a local address: alias, user, +tag removed, catch-all.
func (r *resolver) expand(ctx context.Context, a mail.Address, key string, depth int) error {
	found, err := r.aliasOrUser(ctx, key, depth)
	if err != nil || found {
		return err
	}
	// user+tag@domain -> user@domain (Postfix recipient_delimiter, sendmail's +detail).
	if base, _, ok := strings.Cut(a.Local, r.d.opts.RecipientDelimiter); ok && base != "" {
		if found, err = r.aliasOrUser(ctx, strings.ToLower(base)+"@"+a.Domain, depth); err != nil || found {
			return err
		}
	}
	return r.catchAll(ctx, a, depth)
}

// aliasOrUser tries an exact alias, then a user. found is false when neither exists.
func (r *resolver) aliasOrUser(ctx context.Context, key string, depth int) (found bool, err error) {
	alias, err := r.d.opts.Store.GetAlias(ctx, key)
	switch {
	case err == nil:
		return true, r.targets(ctx, alias, "", depth)
	case !errors.Is(err, store.ErrNotFound):
		return false, fmt.Errorf("look up alias %q: %w", key, err)
	}
	return r.user(ctx, key)
}

// user adds the user stored under key, if any.
func (r *resolver) user(ctx context.Context, key string) (found bool, err error) {
	u, err := r.d.opts.Store.GetUser(ctx, key)
	switch {
	case err == nil:
		r.addUser(u)
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("look up user %q: %w", key, err)
}

// catchAll applies the domain's "@domain" alias: a target "someone@x" takes all mail of the domain, a target
// "@other" maps the local part onto another domain (sendmail virtusertable "@a.com %1@b.com").
func (r *resolver) catchAll(ctx context.Context, a mail.Address, depth int) error {
	alias, err := r.d.opts.Store.GetAlias(ctx, "@"+a.Domain)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s: %w", a, ErrUnknownRecipient)
	}
	if err != nil {
		return fmt.Errorf("look up catch-all of %s: %w", a.Domain, err)
	}
	return r.targets(ctx, alias, a.Local, depth)
}

// targets resolves each target of alias. local is the recipient's local part for a catch-all ("" otherwise).
// A target that leads nowhere is logged and skipped, so one stale target does not bounce the whole alias;
// Resolve reports ErrUnknownRecipient when nothing at all is left.
func (r *resolver) targets(ctx context.Context, alias store.Alias, local string, depth int) error {
	for _, t := range alias.Targets {
		if strings.HasPrefix(t, "@") {
			if local == "" {
				r.d.opts.Logger.Warn("domain mapping target outside a catch-all ignored", "alias", alias.Address, "target", t)
				continue
			}
			t = local + t
		}
		ta, err := mail.ParseAddress(t)
		if err != nil {
			r.d.opts.Logger.Warn("bad alias target", "alias", alias.Address, "target", t, "err", err)
			continue
		}
		err = r.resolve(ctx, ta, depth+1)
		if errors.Is(err, ErrUnknownRecipient) {
			r.d.opts.Logger.Warn("alias target leads nowhere", "alias", alias.Address, "target", t, "err", err)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// MaySendAs reports whether user may use from as sender: their own address (any case), a +tag form of it, or
// an alias (or +tag form of one) whose expansion includes them. A catch-all does not count: it would let a
// user send as anyone in the domain.
func (d *Directory) MaySendAs(ctx context.Context, user store.User, from mail.Address) (bool, error) {
	key := from.Key()
	base := key
	if b, _, ok := strings.Cut(from.Local, d.opts.RecipientDelimiter); ok && b != "" {
		base = strings.ToLower(b) + "@" + from.Domain
	}
	if strings.EqualFold(key, user.Address) || strings.EqualFold(base, user.Address) {
		return true, nil
	}
	for _, k := range []string{key, base} {
		alias, err := d.opts.Store.GetAlias(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("look up alias %q: %w", k, err)
		}
		r := &resolver{
			d: d, seenUser: map[int64]bool{}, seenRemote: map[string]bool{},
			visiting: map[string]bool{k: true}, expanded: map[string]int{k: 0},
		}
		if err := r.targets(ctx, alias, "", 0); err != nil {
			return false, err
		}
		if r.seenUser[user.ID] {
			return true, nil
		}
		break // the exact alias hides the +tag form, as in Resolve
	}
	return false, nil
}
