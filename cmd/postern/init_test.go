package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/postern/postern/internal/config"
)

// tomlKeys lists "table.key" for every toml-tagged field of t.
func tomlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("toml")
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

// TestConfigTemplateCoversEveryKey fails when a config key is added without documenting it in `postern init`'s file,
// and checks that the template's values are the defaults.
func TestConfigTemplateCoversEveryKey(t *testing.T) {
	for _, unpriv := range []bool{false, true} {
		text := fmt.Sprintf(configTemplate, "mail.example.org", listenBlock(unpriv))
		var raw map[string]any
		md, err := toml.Decode(text, &raw)
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, k := range md.Keys() {
			have[k.String()] = true
		}
		for _, k := range tomlKeys(reflect.TypeOf(config.Config{}), "") {
			if !have[k] {
				t.Errorf("config key %s is missing from the init template", k)
			}
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "postern.toml")
		os.WriteFile(path, []byte(text), 0o644)
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatalf("template does not load: %v", err)
		}
		def := config.Default()
		def.Hostname, def.DataDir, def.Path, def.Listen = cfg.Hostname, cfg.DataDir, cfg.Path, cfg.Listen
		if !reflect.DeepEqual(cfg, def) {
			t.Errorf("template values differ from config.Default():\n%+v\n%+v", cfg, def)
		}
	}
	if !regexp.MustCompile(`smtp\s+= \["127.0.0.1:2525"\]`).MatchString(listenBlock(true)) || !strings.Contains(listenBlock(false), `[":25"]`) {
		t.Errorf("listen block:\n%s\n%s", listenBlock(true), listenBlock(false))
	}
}
