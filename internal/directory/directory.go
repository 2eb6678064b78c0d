package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/store"
)

// maxDepth bounds alias expansion (loops and absurd chains).
const maxDepth = 10

// Store is what the directory reads.
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
	RecipientDelimiter string // default "+"
}

// Directory resolves recipients and access rules.
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
	return d.opts.Store.HasDomain(ctx, strings.ToLower(domain))
}

// CheckRecipient says whether rcpt is local and deliverable, local and unknown, or remote.
func (d *Directory) CheckRecipient(ctx context.Context, rcpt mail.Address) (local bool, err error) {
	local, err = d.IsLocalDomain(ctx, rcpt.Domain)
	if err != nil || !local {
		return local, err
	}
	_, err = d.Resolve(ctx, rcpt)
	return true, err
}

// Resolve expands rcpt into local users and remote addresses.
func (d *Directory) Resolve(ctx context.Context, rcpt mail.Address) (Resolution, error) {
	r := &resolver{d: d, seenUser: map[int64]bool{}, seenRemote: map[string]bool{}, visiting: map[string]bool{}}
	if err := r.resolve(ctx, rcpt, 0); err != nil {
		return Resolution{}, err
	}
	if len(r.res.Users) == 0 && len(r.res.Remote) == 0 { // e.g. an alias loop with no way out
		return Resolution{}, fmt.Errorf("%s: %w", rcpt, ErrUnknownRecipient)
	}
	return r.res, nil
}

type resolver struct {
	d          *Directory
	res        Resolution
	seenUser   map[int64]bool
	seenRemote map[string]bool
	visiting   map[string]bool // addresses on the current expansion path (loop detection)
}

func (r *resolver) addUser(u store.User) {
	if !r.seenUser[u.ID] {
		r.seenUser[u.ID] = true
		r.res.Users = append(r.res.Users, u)
	}
}

func (r *resolver) resolve(ctx context.Context, a mail.Address, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("alias expansion of %s deeper than %d: %w", a, maxDepth, ErrUnknownRecipient)
	}
	local, err := r.d.IsLocalDomain(ctx, a.Domain)
	if err != nil {
		return err
	}
	if !local {
		if k := a.Key(); !r.seenRemote[k] {
			r.seenRemote[k] = true
			r.res.Remote = append(r.res.Remote, a)
		}
		return nil
	}
	key := a.Key()
	if r.visiting[key] {
		return nil // a loop: this branch adds nothing new
	}
	r.visiting[key] = true
	defer delete(r.visiting, key)
	found, err := r.resolveLocal(ctx, key, depth)
	if err != nil || found {
		return err
	}
	// user+tag@domain -> user@domain
	if base, _, ok := strings.Cut(a.Local, r.d.opts.RecipientDelimiter); ok && base != "" {
		if found, err = r.resolveLocal(ctx, strings.ToLower(base)+"@"+a.Domain, depth); err != nil || found {
			return err
		}
	}
	return r.catchAll(ctx, a, depth)
}

// resolveLocal tries an exact alias, then a user. found is false when neither exists.
func (r *resolver) resolveLocal(ctx context.Context, key string, depth int) (found bool, err error) {
	alias, err := r.d.opts.Store.GetAlias(ctx, key)
	if err == nil {
		return true, r.targets(ctx, alias.Targets, "", depth)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	u, err := r.d.opts.Store.GetUser(ctx, key)
	if err == nil {
		r.addUser(u)
		return true, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	return false, nil
}

// catchAll applies the domain's "@domain" alias: "someone@x" takes all mail, "@other" maps the local part.
func (r *resolver) catchAll(ctx context.Context, a mail.Address, depth int) error {
	alias, err := r.d.opts.Store.GetAlias(ctx, "@"+a.Domain)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s: %w", a, ErrUnknownRecipient)
	}
	if err != nil {
		return err
	}
	return r.targets(ctx, alias.Targets, a.Local, depth)
}

func (r *resolver) targets(ctx context.Context, targets []string, local string, depth int) error {
	for _, t := range targets {
		if strings.HasPrefix(t, "@") {
			if local == "" {
				continue // a domain mapping only makes sense for a catch-all
			}
			t = local + t
		}
		ta, err := mail.ParseAddress(t)
		if err != nil {
			r.d.opts.Logger.Warn("bad alias target", "target", t, "err", err)
			continue
		}
		if err := r.resolve(ctx, ta, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// MaySendAs reports whether user may use from as sender: their own address, a +tag form of it, or an alias
// whose expansion includes them.
func (d *Directory) MaySendAs(ctx context.Context, user store.User, from mail.Address) (bool, error) {
	key := from.Key()
	if strings.EqualFold(key, user.Address) {
		return true, nil
	}
	if base, _, ok := strings.Cut(from.Local, d.opts.RecipientDelimiter); ok && strings.EqualFold(base+"@"+from.Domain, user.Address) {
		return true, nil
	}
	if _, err := d.opts.Store.GetAlias(ctx, key); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	res, err := d.Resolve(ctx, from)
	if err != nil {
		if errors.Is(err, ErrUnknownRecipient) {
			return false, nil
		}
		return false, err
	}
	for _, u := range res.Users {
		if u.ID == user.ID {
			return true, nil
		}
	}
	return false, nil
}

// Access returns the access-table action for a client ip and keys (addresses or domains), sendmail-style:
// the IP exactly, then the longest CIDR holding it, then for each key the address, "local@", the domain and each
// parent domain. "" means no rule matched.
func (d *Directory) Access(ctx context.Context, ip netip.Addr, keys ...string) (string, error) {
	rules, err := d.opts.Store.ListAccess(ctx)
	if err != nil || len(rules) == 0 {
		return "", err
	}
	table := make(map[string]string, len(rules))
	best, bestBits := "", -1
	ip = ip.Unmap()
	for _, r := range rules {
		p := strings.ToLower(r.Pattern)
		table[p] = strings.ToUpper(r.Action)
		if pfx, err := netip.ParsePrefix(p); err == nil && ip.IsValid() && pfx.Contains(ip) && pfx.Bits() > bestBits {
			best, bestBits = table[p], pfx.Bits()
		}
	}
	if ip.IsValid() {
		if a, ok := table[ip.String()]; ok {
			return a, nil
		}
		if best != "" {
			return best, nil
		}
	}
	for _, k := range keys {
		for _, cand := range accessCandidates(strings.ToLower(k)) {
			if a, ok := table[cand]; ok {
				return a, nil
			}
		}
	}
	return "", nil
}

// accessCandidates lists the lookups for one key in order: address, local@, domain, parent domains.
func accessCandidates(k string) []string {
	var out []string
	domain := k
	if i := strings.LastIndexByte(k, '@'); i >= 0 {
		out = append(out, k, k[:i+1])
		domain = k[i+1:]
	}
	for domain != "" {
		out = append(out, domain)
		_, rest, ok := strings.Cut(domain, ".")
		if !ok {
			break
		}
		domain = rest
	}
	return out
}

// ValidateAccess checks an access rule given on the command line.
func ValidateAccess(pattern, action string) error {
	switch strings.ToUpper(action) {
	case store.ActionOK, store.ActionRelay, store.ActionReject, store.ActionDiscard:
	default:
		return fmt.Errorf("action %q is not one of OK, RELAY, REJECT, DISCARD", action)
	}
	if _, err := netip.ParseAddr(pattern); err == nil {
		return nil
	}
	if _, err := netip.ParsePrefix(pattern); err == nil {
		return nil
	}
	if local, ok := strings.CutSuffix(pattern, "@"); ok && local != "" && !strings.Contains(local, "@") {
		return nil
	}
	if strings.Contains(pattern, "@") {
		if _, err := mail.ParseAddress(pattern); err != nil {
			return fmt.Errorf("pattern %q: %w", pattern, err)
		}
		return nil
	}
	if _, err := mail.NormalizeDomain(pattern); err != nil || !strings.Contains(pattern, ".") && pattern != "localhost" {
		return fmt.Errorf("pattern %q is not an IP, CIDR, domain, address or local@", pattern)
	}
	return nil
}
