package directory

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/store"
)

// fake is an in-memory Store. Keys are stored as given (the directory must look them up in Key form).
type fake struct {
	domains    map[string]bool
	users      map[string]store.User
	aliases    map[string][]string
	access     []store.AccessRule
	failOn     string // an address whose lookups fail with a backend error
	aliasCalls int
}

var errBackend = errors.New("backend down")

func (f *fake) HasDomain(_ context.Context, n string) (bool, error) { return f.domains[n], nil }

func (f *fake) GetUser(_ context.Context, a string) (store.User, error) {
	if a == f.failOn {
		return store.User{}, errBackend
	}
	if u, ok := f.users[a]; ok {
		return u, nil
	}
	return store.User{}, fmt.Errorf("user %s: %w", a, store.ErrNotFound)
}

func (f *fake) GetAlias(_ context.Context, a string) (store.Alias, error) {
	f.aliasCalls++
	if a == f.failOn {
		return store.Alias{}, errBackend
	}
	if t, ok := f.aliases[a]; ok {
		return store.Alias{Address: a, Targets: t}, nil
	}
	return store.Alias{}, fmt.Errorf("alias %s: %w", a, store.ErrNotFound)
}

func (f *fake) ListAccess(context.Context) ([]store.AccessRule, error) { return f.access, nil }

func newFake() *fake {
	f := &fake{
		domains: map[string]bool{"a.org": true, "b.org": true, "c.org": true, "d.org": true, "xn--bcher-kva.example": true},
		users:   map[string]store.User{},
	}
	for i, u := range []string{"alice@a.org", "bob@a.org", "carol@b.org", "pm@c.org", "self@a.org", "jörg@xn--bcher-kva.example"} {
		f.users[u] = store.User{ID: int64(i + 1), Address: u}
	}
	f.aliases = map[string][]string{
		"team@a.org":        {"alice@a.org", "bob@a.org", "ext@remote.net", "alice@a.org", "EXT@Remote.NET"},
		"nested@a.org":      {"team@a.org", "carol@b.org"},
		"loop1@a.org":       {"loop2@a.org"},
		"loop2@a.org":       {"loop1@a.org"},
		"loopu@a.org":       {"loopv@a.org", "bob@a.org"},
		"loopv@a.org":       {"loopu@a.org"},
		"self@a.org":        {"self@a.org", "self@elsewhere.net"}, // keep a copy and forward
		"stale@a.org":       {"gone@a.org", "bob@a.org", "not an address"},
		"allstale@a.org":    {"gone@a.org", "@a.org"},
		"remote@a.org":      {"x@remote.net", "y@remote.net"},
		"tagged@a.org":      {"alice+lists@a.org"},
		"bob+special@a.org": {"carol@b.org"},
		"@b.org":            {"@a.org"},   // virtusertable "@b.org %1@a.org"
		"@c.org":            {"pm@c.org"}, // catch-all
		"@d.org":            {"@remote.net", "pm@c.org"},
		"deep0@a.org":       {"deep1@a.org"},
		"chain0@a.org":      {"chain1@a.org"},
	}
	for i := 1; i < 15; i++ {
		f.aliases[fmt.Sprintf("deep%d@a.org", i)] = []string{fmt.Sprintf("deep%d@a.org", i+1)}
	}
	f.aliases["deep15@a.org"] = []string{"alice@a.org"}
	for i := 1; i < 9; i++ { // chain0 -> ... -> chain9 -> alice: 10 levels, within the limit
		f.aliases[fmt.Sprintf("chain%d@a.org", i)] = []string{fmt.Sprintf("chain%d@a.org", i+1)}
	}
	f.aliases["chain9@a.org"] = []string{"alice@a.org"}
	return f
}

func newDir(t *testing.T, f *fake) *Directory {
	t.Helper()
	d, err := New(Options{Store: f})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func resolveStr(t *testing.T, d *Directory, addr string) (string, error) {
	t.Helper()
	a, err := mail.ParseAddress(addr)
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Resolve(context.Background(), a)
	var names []string
	for _, u := range r.Users {
		names = append(names, u.Address)
	}
	for _, x := range r.Remote {
		names = append(names, "remote:"+x.Key())
	}
	sort.Strings(names)
	return strings.Join(names, " "), err
}

func TestResolve(t *testing.T) {
	t.Parallel()
	d := newDir(t, newFake())
	for _, tt := range []struct{ name, in, want string }{
		{"user", "alice@a.org", "alice@a.org"},
		{"case", "ALICE@A.ORG", "alice@a.org"},
		{"idn", "Jörg@Bücher.example", "jörg@xn--bcher-kva.example"},
		{"several targets, dedup", "team@a.org", "alice@a.org bob@a.org remote:ext@remote.net"},
		{"nested alias", "nested@a.org", "alice@a.org bob@a.org carol@b.org remote:ext@remote.net"},
		{"remote targets", "remote@a.org", "remote:x@remote.net remote:y@remote.net"},
		{"+tag on user", "alice+news@a.org", "alice@a.org"},
		{"+tag on alias", "team+x@a.org", "alice@a.org bob@a.org remote:ext@remote.net"},
		{"exact alias beats +tag", "bob+special@a.org", "carol@b.org"},
		{"+tag target", "tagged@a.org", "alice@a.org"},
		{"virtusertable mapping", "bob@b.org", "bob@a.org"},
		{"virtusertable with tag", "Bob+x@b.org", "bob@a.org"},
		{"virtusertable mapped alias", "team@b.org", "alice@a.org bob@a.org remote:ext@remote.net"},
		{"user beats mapping", "carol@b.org", "carol@b.org"},
		{"catch-all", "anyone@c.org", "pm@c.org"},
		{"catch-all to remote domain", "Zed@d.org", "pm@c.org remote:zed@remote.net"},
		{"loop with a way out", "loopu@a.org", "bob@a.org"},
		{"alias to itself keeps a copy", "self@a.org", "remote:self@elsewhere.net self@a.org"},
		{"stale targets skipped", "stale@a.org", "bob@a.org"},
		{"depth 10 allowed", "chain0@a.org", "alice@a.org"},
		{"non-local", "X@Remote.net", "remote:x@remote.net"},
	} {
		got, err := resolveStr(t, d, tt.in)
		if err != nil || got != tt.want {
			t.Errorf("%s: Resolve(%s) = [%s], %v; want [%s]", tt.name, tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"nobody@a.org", "loop1@a.org", "deep0@a.org", "zed@b.org", "allstale@a.org", "x+y@a.org"} {
		if got, err := resolveStr(t, d, bad); !errors.Is(err, ErrUnknownRecipient) {
			t.Errorf("Resolve(%s) = [%s], %v; want ErrUnknownRecipient", bad, got, err)
		}
	}
}

func TestResolveDelimiter(t *testing.T) {
	t.Parallel()
	d, err := New(Options{Store: newFake(), RecipientDelimiter: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := resolveStr(t, d, "alice-x@a.org"); got != "alice@a.org" || err != nil {
		t.Errorf("alice-x: [%s] %v", got, err)
	}
	if _, err := resolveStr(t, d, "alice+x@a.org"); !errors.Is(err, ErrUnknownRecipient) {
		t.Errorf("alice+x with delimiter -: %v", err)
	}
}

// TestResolveDiamond: a wide, deep graph of aliases sharing targets is expanded once per address, not once per path.
func TestResolveDiamond(t *testing.T) {
	t.Parallel()
	f := newFake()
	for i := 0; i < 9; i++ {
		next := []string{fmt.Sprintf("l%da@a.org", i+1), fmt.Sprintf("l%db@a.org", i+1)}
		f.aliases[fmt.Sprintf("l%da@a.org", i)], f.aliases[fmt.Sprintf("l%db@a.org", i)] = next, next
	}
	f.aliases["l9a@a.org"], f.aliases["l9b@a.org"] = []string{"alice@a.org"}, []string{"bob@a.org"}
	d := newDir(t, f)
	if got, err := resolveStr(t, d, "l0a@a.org"); got != "alice@a.org bob@a.org" || err != nil {
		t.Fatalf("diamond: [%s] %v", got, err)
	}
	if f.aliasCalls > 100 {
		t.Errorf("diamond took %d alias lookups: expansion is not memoized", f.aliasCalls)
	}
}

func TestResolveBackendError(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.failOn = "bob@a.org"
	d := newDir(t, f)
	for _, in := range []string{"team@a.org", "bob@a.org"} {
		if _, err := resolveStr(t, d, in); !errors.Is(err, errBackend) || errors.Is(err, ErrUnknownRecipient) {
			t.Errorf("Resolve(%s) with a failing store: %v; want the backend error", in, err)
		}
	}
}

func TestCheckRecipient(t *testing.T) {
	t.Parallel()
	d := newDir(t, newFake())
	ctx := context.Background()
	for _, tt := range []struct {
		in      string
		local   bool
		unknown bool
	}{
		{"alice@a.org", true, false}, {"Team@A.org", true, false}, {"x@c.org", true, false},
		{"nobody@a.org", true, true}, {"loop1@a.org", true, true}, {"x@remote.net", false, false},
	} {
		a, _ := mail.ParseAddress(tt.in)
		local, err := d.CheckRecipient(ctx, a)
		if local != tt.local || errors.Is(err, ErrUnknownRecipient) != tt.unknown || err != nil && !tt.unknown {
			t.Errorf("CheckRecipient(%s) = %v, %v; want local=%v unknown=%v", tt.in, local, err, tt.local, tt.unknown)
		}
	}
}

func TestIsLocalDomain(t *testing.T) {
	t.Parallel()
	d := newDir(t, newFake())
	for in, want := range map[string]bool{"a.org": true, "A.ORG": true, "a.org.": true, "bücher.example": true, "e.org": false} {
		if got, err := d.IsLocalDomain(context.Background(), in); got != want || err != nil {
			t.Errorf("IsLocalDomain(%s) = %v, %v", in, got, err)
		}
	}
}

func TestMaySendAs(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.aliases["sales@a.org"] = []string{"alice@a.org", "bob@a.org"}
	d := newDir(t, f)
	alice, bob, carol := f.users["alice@a.org"], f.users["bob@a.org"], f.users["carol@b.org"]
	for _, tt := range []struct {
		user store.User
		from string
		want bool
	}{
		{alice, "alice@a.org", true}, {alice, "Alice@A.org", true}, {alice, "alice+x@a.org", true},
		{alice, "team@a.org", true}, {alice, "nested@a.org", true}, {alice, "team+x@a.org", true},
		{alice, "sales@a.org", true}, {bob, "sales@a.org", true}, {carol, "sales@a.org", false},
		{carol, "nested@a.org", true}, {bob, "bob+special@a.org", true},
		{alice, "bob@a.org", false}, {alice, "bob+alice@a.org", false},
		{pmUser(f), "anything@c.org", false}, // not via a catch-all
		{bob, "bob@b.org", false},            // not via a virtusertable mapping
		{alice, "alice@b.org", false}, {alice, "x@remote.net", false}, {alice, "loop1@a.org", false},
	} {
		a, _ := mail.ParseAddress(tt.from)
		if got, err := d.MaySendAs(context.Background(), tt.user, a); got != tt.want || err != nil {
			t.Errorf("MaySendAs(%s, %s) = %v, %v; want %v", tt.user.Address, tt.from, got, err, tt.want)
		}
	}
}

func pmUser(f *fake) store.User { return f.users["pm@c.org"] }

func TestNew(t *testing.T) {
	t.Parallel()
	if _, err := New(Options{}); err == nil {
		t.Error("New without a store succeeded")
	}
}
