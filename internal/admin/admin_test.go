package admin

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/postern/postern/internal/auth"
	"github.com/postern/postern/internal/store"
)

// fakeStore keeps the directory in maps; methods the tests do not reach panic through the nil embedded Store.
type fakeStore struct {
	store.Store
	domains   map[string]bool
	users     map[string]store.User
	aliases   map[string]store.Alias
	access    map[string]string
	mailboxes []store.MailboxStatus
	retried   []string
}

func newFake(domains ...string) *fakeStore {
	f := &fakeStore{domains: map[string]bool{}, users: map[string]store.User{}, aliases: map[string]store.Alias{},
		access: map[string]string{}}
	for _, d := range domains {
		f.domains[d] = true
	}
	return f
}

func (f *fakeStore) AddDomain(_ context.Context, name string) error {
	if f.domains[name] {
		return fmt.Errorf("domain %s: %w", name, store.ErrExists)
	}
	f.domains[name] = true
	return nil
}

func (f *fakeStore) HasDomain(_ context.Context, name string) (bool, error) {
	return f.domains[name], nil
}

func (f *fakeStore) AddUser(_ context.Context, u store.User) (store.User, error) {
	u.ID = int64(len(f.users) + 1)
	f.users[u.Address] = u
	return u, nil
}

func (f *fakeStore) GetUser(_ context.Context, address string) (store.User, error) {
	u, ok := f.users[address]
	if !ok {
		return u, fmt.Errorf("user %s: %w", address, store.ErrNotFound)
	}
	return u, nil
}

func (f *fakeStore) SetPassword(_ context.Context, address, hash string) error {
	u, ok := f.users[address]
	if !ok {
		return store.ErrNotFound
	}
	u.PasswordHash = hash
	f.users[address] = u
	return nil
}

func (f *fakeStore) ListUsers(_ context.Context, domain string) ([]store.User, error) {
	var out []store.User
	for _, u := range f.users {
		if domain == "" || strings.HasSuffix(u.Address, "@"+domain) {
			out = append(out, u)
		}
	}
	return out, nil
}

func (f *fakeStore) SetAlias(_ context.Context, a store.Alias) error {
	f.aliases[a.Address] = a
	return nil
}

func (f *fakeStore) RemoveAlias(_ context.Context, address string) error {
	if _, ok := f.aliases[address]; !ok {
		return store.ErrNotFound
	}
	delete(f.aliases, address)
	return nil
}

func (f *fakeStore) SetAccess(_ context.Context, r store.AccessRule) error {
	f.access[r.Pattern] = r.Action
	return nil
}

func (f *fakeStore) ListMailboxes(context.Context, int64) ([]store.MailboxStatus, error) {
	return f.mailboxes, nil
}

func (f *fakeStore) RetryQueued(_ context.Context, id string) error {
	f.retried = append(f.retried, id)
	return nil
}

func TestAddDomain(t *testing.T) {
	t.Parallel()
	f := newFake()
	a := New(f)
	ctx := context.Background()
	if err := a.AddDomain(ctx, "Example.ORG"); err != nil {
		t.Fatal(err)
	}
	if err := a.AddDomain(ctx, "bücher.example"); err != nil {
		t.Fatal(err)
	}
	if !f.domains["example.org"] || !f.domains["xn--bcher-kva.example"] {
		t.Fatalf("domains stored as %v", f.domains)
	}
	for _, bad := range []string{"", "[127.0.0.1]", "a..b", "bad domain"} {
		if err := a.AddDomain(ctx, bad); err == nil {
			t.Errorf("AddDomain(%q) succeeded", bad)
		}
	}
}

func TestAddUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name, address, password string
		quota                   int64
		wantErr                 string
	}{
		{"ok", "Alice@Example.org", "secret", 2048, ""},
		{"foreign domain", "bob@example.net", "secret", 0, "domain example.net is not local: run postern domain add example.net"},
		{"empty password", "carol@example.org", "", 0, "password must not be empty"},
		{"bad address", "not an address", "secret", 0, "bad address"},
		{"negative quota", "dave@example.org", "secret", -1, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake("example.org")
			u, err := New(f).AddUser(ctx, tt.address, tt.password, tt.quota)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if len(f.users) != 0 {
					t.Fatal("a user was stored despite the error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Address != "alice@example.org" || u.QuotaBytes != tt.quota {
				t.Fatalf("stored %+v", u)
			}
			if u.PasswordHash == tt.password || !strings.HasPrefix(u.PasswordHash, "$") {
				t.Fatalf("password stored as %q", u.PasswordHash)
			}
			if ok, err := auth.VerifyPassword(u.PasswordHash, tt.password); err != nil || !ok {
				t.Fatalf("stored hash does not verify: %v %v", ok, err)
			}
		})
	}
}

func TestSetPasswordNormalizes(t *testing.T) {
	t.Parallel()
	f := newFake("example.org")
	a := New(f)
	ctx := context.Background()
	if _, err := a.AddUser(ctx, "alice@example.org", "one", 0); err != nil {
		t.Fatal(err)
	}
	if err := a.SetPassword(ctx, "ALICE@EXAMPLE.ORG", "two"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := auth.VerifyPassword(f.users["alice@example.org"].PasswordHash, "two"); !ok {
		t.Fatal("password not changed")
	}
	if err := a.SetPassword(ctx, "alice@example.org", ""); err == nil {
		t.Fatal("empty password accepted")
	}
}

func TestAddAlias(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		address string
		targets []string
		key     string
		want    []string
		wantErr string
	}{
		{"Sales@Example.org", []string{"alice@example.org", "Bob@Remote.example", "alice@example.org"},
			"sales@example.org", []string{"alice@example.org", "Bob@remote.example"}, ""},
		{"@other.test", []string{"@Example.org"}, "@other.test", []string{"@example.org"}, ""},
		{"@example.org", []string{"postmaster@example.org"}, "@example.org", []string{"postmaster@example.org"}, ""},
		{"x@example.org", nil, "", nil, "at least one target"},
		{"x@nowhere.test", []string{"a@example.org"}, "", nil, "domain nowhere.test is not local"},
		{"@nowhere.test", []string{"@example.org"}, "", nil, "domain nowhere.test is not local"},
		{"x@example.org", []string{"not an address"}, "", nil, `target "not an address"`},
		{"x@example.org", []string{"@"}, "", nil, `target "@"`},
		{"x@example.org", []string{"X@example.org"}, "", nil, "itself"},
		{"bad", []string{"a@example.org"}, "", nil, "bad address"},
	}
	for _, tt := range tests {
		f := newFake("example.org", "other.test")
		err := New(f).AddAlias(ctx, tt.address, tt.targets...)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("AddAlias(%q, %q) = %v, want %q", tt.address, tt.targets, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("AddAlias(%q, %q): %v", tt.address, tt.targets, err)
			continue
		}
		if got := f.aliases[tt.key].Targets; !slices.Equal(got, tt.want) {
			t.Errorf("AddAlias(%q): stored %q under %v, want %q", tt.address, got, f.aliases, tt.want)
		}
	}
}

func TestRemoveAliasNormalizes(t *testing.T) {
	t.Parallel()
	f := newFake("example.org")
	a := New(f)
	ctx := context.Background()
	for _, al := range []string{"team@example.org", "@example.org"} {
		if err := a.AddAlias(ctx, al, "x@remote.example"); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.RemoveAlias(ctx, "TEAM@Example.Org"); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveAlias(ctx, "@EXAMPLE.org"); err != nil {
		t.Fatal(err)
	}
	if len(f.aliases) != 0 {
		t.Fatalf("aliases left: %v", f.aliases)
	}
}

func TestAddAccess(t *testing.T) {
	t.Parallel()
	f := newFake()
	a := New(f)
	ctx := context.Background()
	for pattern, action := range map[string]string{"127.0.0.1": "reject", "10.0.0.0/8": "Relay", "Spammer.Example": "REJECT",
		"blackhole@remote.example": "discard"} {
		if err := a.AddAccess(ctx, pattern, action); err != nil {
			t.Fatalf("AddAccess(%q, %q): %v", pattern, action, err)
		}
	}
	want := map[string]string{"127.0.0.1": "REJECT", "10.0.0.0/8": "RELAY", "spammer.example": "REJECT",
		"blackhole@remote.example": "DISCARD"}
	for p, act := range want {
		if f.access[p] != act {
			t.Errorf("access[%q] = %q, want %q (table %v)", p, f.access[p], act, f.access)
		}
	}
	for _, bad := range [][2]string{{"not a pattern!", "OK"}, {"127.0.0.1", "MAYBE"}} {
		if err := a.AddAccess(ctx, bad[0], bad[1]); err == nil {
			t.Errorf("AddAccess(%q, %q) succeeded", bad[0], bad[1])
		}
	}
}

func TestMailboxListInboxFirst(t *testing.T) {
	t.Parallel()
	f := newFake("example.org")
	a := New(f)
	ctx := context.Background()
	if _, err := a.AddUser(ctx, "bob@example.org", "pw", 0); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"Trash", "Archive", "INBOX", "Drafts"} {
		f.mailboxes = append(f.mailboxes, store.MailboxStatus{Mailbox: store.Mailbox{Name: n}})
	}
	mbs, err := a.MailboxList(ctx, "Bob@Example.org")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mbs {
		names = append(names, m.Name)
	}
	if want := []string{"INBOX", "Archive", "Drafts", "Trash"}; !slices.Equal(names, want) {
		t.Fatalf("order %q, want %q", names, want)
	}
	if _, err := a.MailboxList(ctx, "nobody@example.org"); err == nil {
		t.Fatal("mailbox list of an unknown user succeeded")
	}
}

func TestQueueFlushAndRetry(t *testing.T) {
	t.Parallel()
	f := newFake()
	a := New(f)
	ctx := context.Background()
	if err := a.QueueFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.QueueRetry(ctx, "Q1"); err != nil {
		t.Fatal(err)
	}
	if err := a.QueueRetry(ctx, ""); err == nil {
		t.Fatal("retry without an ID flushed the queue")
	}
	if !slices.Equal(f.retried, []string{"", "Q1"}) {
		t.Fatalf("retried %q", f.retried)
	}
}
