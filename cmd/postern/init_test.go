package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/postern/postern/internal/config"
)

// tomlKeys lists "table.key" for every toml-tagged field of t.
func tomlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		if t.Field(i).Type.Kind() == reflect.Struct {
			keys = append(keys, tomlKeys(t.Field(i).Type, prefix+tag+".")...)
			continue
		}
		keys = append(keys, prefix+tag)
	}
	return keys
}

// TestWrittenConfigCoversEveryKey fails when a key is added to config.Config without adding it, with its default
// and a comment, to the file `postern init` writes; and when that file does not load or its values drift from
// config.Default().
func TestWrittenConfigCoversEveryKey(t *testing.T) {
	t.Parallel()
	if len(tomlKeys(reflect.TypeOf(config.Config{}), "")) < 40 {
		t.Fatal("tomlKeys found too few keys: the reflection is broken")
	}
	for _, unpriv := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "etc")
		path, err := writeConfig(dir, "mail.example.org", unpriv)
		if err != nil {
			t.Fatal(err)
		}
		var raw map[string]any
		md, err := toml.DecodeFile(path, &raw)
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, k := range md.Keys() {
			have[k.String()] = true
		}
		for _, k := range tomlKeys(reflect.TypeOf(config.Config{}), "") {
			if !have[k] {
				t.Errorf("config key %s is missing from the file postern init writes", k)
			}
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatalf("written config does not load: %v", err)
		}
		if want := filepath.Join(dir, "data"); cfg.DataDir != want {
			t.Errorf("data_dir resolves to %s, want %s", cfg.DataDir, want)
		}
		def := config.Default()
		def.Hostname, def.DataDir, def.Path = "mail.example.org", cfg.DataDir, cfg.Path
		if unpriv {
			def.Listen = config.Listen{
				SMTP: []string{"127.0.0.1:2525"}, Submission: []string{"127.0.0.1:2587"},
				Submissions: []string{"127.0.0.1:2465"}, IMAP: []string{"127.0.0.1:2143"},
				IMAPS: []string{"127.0.0.1:2993"}, POP3: []string{"127.0.0.1:2110"},
				POP3S: []string{"127.0.0.1:2995"}, POP2: []string{}, HTTP: []string{"127.0.0.1:8080"},
			}
		}
		if !reflect.DeepEqual(cfg, def) {
			t.Errorf("unprivileged=%v: written values differ from config.Default():\n got %+v\nwant %+v", unpriv, cfg, def)
		}
		if _, err := writeConfig(dir, "other", unpriv); err == nil {
			t.Error("writeConfig replaced an existing config")
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Errorf("config dir holds %d entries, want only postern.toml", len(ents))
		}
	}
}

// TestWrittenConfigIsCommented: every key line of the file carries a comment, so the file explains itself.
func TestWrittenConfigIsCommented(t *testing.T) {
	t.Parallel()
	for _, unpriv := range []bool{false, true} {
		for i, l := range strings.Split(configText("h", unpriv), "\n") {
			if strings.Contains(l, " = ") && !strings.Contains(l, "# ") {
				t.Errorf("line %d has no comment: %q", i+1, l)
			}
		}
	}
}
