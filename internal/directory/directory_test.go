package directory

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"testing"

	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/store"
)

type fake struct {
	domains map[string]bool
	users   map[string]store.User
	aliases map[string][]string
	access  []store.AccessRule
}

func (f *fake) HasDomain(_ context.Context, n string) (bool, error) { return f.domains[n], nil }
func (f *fake) GetUser(_ context.Context, a string) (store.User, error) {
	if u, ok := f.users[a]; ok {
		return u, nil
	}
	return store.User{}, fmt.Errorf("%s: %w", a, store.ErrNotFound)
}
func (f *fake) GetAlias(_ context.Context, a string) (store.Alias, error) {
	if t, ok := f.aliases[a]; ok {
		return store.Alias{Address: a, Targets: t}, nil
	}
	return store.Alias{}, fmt.Errorf("%s: %w", a, store.ErrNotFound)
}
func (f *fake) ListAccess(context.Context) ([]store.AccessRule, error) { return f.access, nil }

func newFake() *fake {
	f := &fake{domains: map[string]bool{"a.org": true, "b.org": true, "c.org": true}, users: map[string]store.User{}}
	for i, u := range []string{"alice@a.org", "bob@a.org", "carol@b.org", "pm@c.org"} {
		f.users[u] = store.User{ID: int64(i + 1), Address: u}
	}
	f.aliases = map[string][]string{
		"team@a.org":   {"alice@a.org", "bob@a.org", "ext@remote.net", "alice@a.org"},
		"nested@a.org": {"team@a.org", "carol@b.org"},
		"loop1@a.org":  {"loop2@a.org"},
		"loop2@a.org":  {"loop1@a.org"},
		"loopu@a.org":  {"loopv@a.org", "bob@a.org"},
		"loopv@a.org":  {"loopu@a.org"},
		"@b.org":       {"@a.org"},   // virtusertable: %1@a.org
		"@c.org":       {"pm@c.org"}, // catch-all
		"deep0@a.org":  {"deep1@a.org"},
	}
	for i := 1; i < 15; i++ {
		f.aliases[fmt.Sprintf("deep%d@a.org", i)] = []string{fmt.Sprintf("deep%d@a.org", i+1)}
	}
	f.aliases["deep15@a.org"] = []string{"alice@a.org"}
	return f
}

func resolveStr(t *testing.T, d *Directory, addr string) (string, error) {
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
		names = append(names, "remote:"+x.String())
	}
	sort.Strings(names)
	return fmt.Sprint(names), err
}

func TestResolve(t *testing.T) {
	d, _ := New(Options{Store: newFake()})
	for _, tt := range []struct{ in, want string }{
		{"alice@a.org", "[alice@a.org]"},
		{"ALICE@A.ORG", "[alice@a.org]"},
		{"team@a.org", "[alice@a.org bob@a.org remote:ext@remote.net]"},
		{"nested@a.org", "[alice@a.org bob@a.org carol@b.org remote:ext@remote.net]"},
		{"alice+news@a.org", "[alice@a.org]"},
		{"team+x@a.org", "[alice@a.org bob@a.org remote:ext@remote.net]"},
		{"bob@b.org", "[bob@a.org]"},     // mapped onto a.org
		{"carol@b.org", "[carol@b.org]"}, // a real user wins over the mapping
		{"anyone@c.org", "[pm@c.org]"},
		{"loopu@a.org", "[bob@a.org]"},
		{"x@remote.net", "[remote:x@remote.net]"},
	} {
		got, err := resolveStr(t, d, tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Resolve(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"nobody@a.org", "loop1@a.org", "deep0@a.org", "zed@b.org"} {
		if _, err := resolveStr(t, d, bad); !errors.Is(err, ErrUnknownRecipient) {
			t.Errorf("Resolve(%s): err %v, want ErrUnknownRecipient", bad, err)
		}
	}
	ctx := context.Background()
	if local, err := d.CheckRecipient(ctx, mail.Address{Local: "x", Domain: "remote.net"}); local || err != nil {
		t.Errorf("remote: %v %v", local, err)
	}
	if local, err := d.CheckRecipient(ctx, mail.Address{Local: "nobody", Domain: "a.org"}); !local || !errors.Is(err, ErrUnknownRecipient) {
		t.Errorf("unknown local: %v %v", local, err)
	}
}

func TestMaySendAs(t *testing.T) {
	f := newFake()
	d, _ := New(Options{Store: f})
	alice := f.users["alice@a.org"]
	for _, tt := range []struct {
		from string
		want bool
	}{
		{"alice@a.org", true}, {"Alice@A.org", true}, {"alice+x@a.org", true}, {"team@a.org", true},
		{"bob@a.org", false}, {"anything@c.org", false}, {"alice@b.org", false}, {"x@remote.net", false},
	} {
		a, _ := mail.ParseAddress(tt.from)
		if got, err := d.MaySendAs(context.Background(), alice, a); got != tt.want || err != nil {
			t.Errorf("MaySendAs(alice, %s) = %v, %v", tt.from, got, err)
		}
	}
}

func TestAccess(t *testing.T) {
	f := newFake()
	f.access = []store.AccessRule{
		{Pattern: "10.0.0.0/8", Action: "RELAY"}, {Pattern: "10.1.0.0/16", Action: "REJECT"}, {Pattern: "10.1.2.3", Action: "OK"},
		{Pattern: "spam.example", Action: "REJECT"}, {Pattern: "friend@spam.example", Action: "OK"}, {Pattern: "postmaster@", Action: "OK"},
		{Pattern: "2001:db8::/32", Action: "DISCARD"},
	}
	d, _ := New(Options{Store: f})
	for _, tt := range []struct {
		ip   string
		keys []string
		want string
	}{
		{"10.1.2.3", nil, "OK"}, {"10.1.9.9", nil, "REJECT"}, {"10.9.9.9", nil, "RELAY"}, {"192.0.2.1", nil, ""},
		{"192.0.2.1", []string{"x@mx.spam.example"}, "REJECT"}, {"192.0.2.1", []string{"friend@spam.example"}, "OK"},
		{"192.0.2.1", []string{"postmaster@spam.example"}, "OK"}, {"192.0.2.1", []string{"a@ok.example", "Spam.Example"}, "REJECT"},
		{"2001:db8::5", nil, "DISCARD"}, {"::ffff:10.1.2.3", nil, "OK"},
	} {
		if got, err := d.Access(context.Background(), netip.MustParseAddr(tt.ip), tt.keys...); got != tt.want || err != nil {
			t.Errorf("Access(%s, %v) = %q, %v; want %q", tt.ip, tt.keys, got, err, tt.want)
		}
	}
}

func TestValidateAccess(t *testing.T) {
	for _, ok := range [][2]string{{"192.0.2.1", "ok"}, {"10.0.0.0/8", "RELAY"}, {"example.org", "REJECT"}, {"a@example.org", "DISCARD"}, {"postmaster@", "OK"}, {"::1", "OK"}} {
		if err := ValidateAccess(ok[0], ok[1]); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, bad := range [][2]string{{"192.0.2.1", "MAYBE"}, {"not a pattern!", "OK"}, {"a@@b", "OK"}, {"nodots", "OK"}} {
		if err := ValidateAccess(bad[0], bad[1]); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
