package app

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/postern/postern/"

// protocolServers sit on top; they talk to interfaces on their own side (DESIGN.md "Dependency direction").
var protocolServers = []string{"internal/smtpserver", "internal/imapserver", "internal/pop3server", "internal/pop2server", "internal/web"}

// backends are concrete storage drivers: only app (the composition root) may import them.
var backends = []string{"internal/store/sqlite", "internal/store/postgres", "internal/store/blob/fs", "internal/store/blob/s3"}

// rule says which internal imports a package may not have.
type rule struct {
	why    string
	from   func(pkg string) bool
	denied func(pkg, imp string) bool
}

func under(prefixes ...string) func(string) bool {
	return func(p string) bool {
		for _, pre := range prefixes {
			if p == pre || strings.HasPrefix(p, pre+"/") {
				return true
			}
		}
		return false
	}
}

var rules = []rule{
	{"nothing but cmd imports app", func(p string) bool { return !under("cmd", "internal/app")(p) },
		func(_, imp string) bool { return under("internal/app", "cmd")(imp) }},
	{"only app and cmd import config", func(p string) bool { return !under("cmd", "internal/app", "internal/config")(p) },
		func(_, imp string) bool { return under("internal/config")(imp) }},
	{"only app imports a storage backend", func(p string) bool {
		return !under("internal/app")(p) && !under(backends...)(p) && !under("internal/store/storetest")(p)
	},
		func(p, imp string) bool { return under(backends...)(imp) && !strings.HasPrefix(imp, p) }},
	{"protocol servers never import each other", under(protocolServers...),
		func(p, imp string) bool { return under(protocolServers...)(imp) && !under(p)(imp) }},
	{"mail is a leaf (its sub-packages may use each other)", under("internal/mail"),
		func(_, imp string) bool { return !under("internal/mail")(imp) }},
	{"store imports only leaves; backends import store, never the reverse", func(p string) bool { return p == "internal/store" },
		func(_, imp string) bool { return !under("internal/mail")(imp) }},
	{"backends do not reach up into domain packages", under(backends...),
		func(_, imp string) bool {
			return !under("internal/store", "internal/mail")(imp)
		}},
	{"nothing points back up to protocol servers", func(p string) bool { return !under(append(protocolServers, "internal/app", "cmd")...)(p) },
		func(_, imp string) bool { return under(protocolServers...)(imp) }},
	{"filter does not import delivery, queue or outbound", under("internal/filter"),
		func(_, imp string) bool {
			return under("internal/delivery", "internal/queue", "internal/outbound")(imp)
		}},
	{"outbound does not import queue (queue -> outbound)", under("internal/outbound"),
		func(_, imp string) bool { return under("internal/queue", "internal/delivery")(imp) }},
	{"queue does not import delivery (delivery -> queue)", under("internal/queue"),
		func(_, imp string) bool { return under("internal/delivery")(imp) }},
}

// TestArchitecture enforces the one-way dependency rule of DESIGN.md on every non-test Go file.
func TestArchitecture(t *testing.T) {
	root := filepath.Join("..", "..")
	imports := map[string]map[string]bool{} // package dir -> internal imports
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		if imports[pkg] == nil {
			imports[pkg] = map[string]bool{}
		}
		for _, imp := range f.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			if strings.HasPrefix(p, module) {
				imports[pkg][strings.TrimPrefix(p, module)] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(imports) < 3 {
		t.Fatalf("found only %d packages; is the walk rooted right?", len(imports))
	}
	for pkg, imps := range imports {
		for imp := range imps {
			for _, r := range rules {
				if r.from(pkg) && r.denied(pkg, imp) {
					t.Errorf("%s imports %s: %s", pkg, imp, r.why)
				}
			}
		}
	}
}

// TestArchitectureRulesBite proves the rules catch a forbidden edge, so the test above cannot pass vacuously.
func TestArchitectureRulesBite(t *testing.T) {
	bad := [][2]string{
		{"internal/smtpserver", "internal/store/sqlite"},
		{"internal/smtpserver", "internal/imapserver"},
		{"internal/store", "internal/directory"},
		{"internal/delivery", "internal/app"},
		{"internal/directory", "internal/config"},
		{"internal/mail", "internal/store"},
		{"internal/outbound", "internal/queue"},
	}
	for _, e := range bad {
		caught := false
		for _, r := range rules {
			if r.from(e[0]) && r.denied(e[0], e[1]) {
				caught = true
			}
		}
		if !caught {
			t.Errorf("edge %s -> %s is not caught by any rule", e[0], e[1])
		}
	}
	ok := [][2]string{
		{"internal/app", "internal/store/sqlite"},
		{"internal/smtpserver", "internal/delivery"},
		{"internal/store/sqlite", "internal/store"},
		{"cmd/postern", "internal/app"},
		{"internal/delivery", "internal/directory"},
	}
	for _, e := range ok {
		for _, r := range rules {
			if r.from(e[0]) && r.denied(e[0], e[1]) {
				t.Errorf("allowed edge %s -> %s is denied by %q", e[0], e[1], r.why)
			}
		}
	}
}
