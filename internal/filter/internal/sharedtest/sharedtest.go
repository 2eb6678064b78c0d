// Package sharedtest reads the shared test data (the suites, vectors and corpora in ../shared/testdata beside
// the repository) for the tests of the filter checks. The data is not part of the repository: a test that
// needs a missing file is skipped on a developer's machine and fails when CI=true.
package sharedtest

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir is the shared test data directory as seen from a check's package directory (internal/filter/NAME).
const Dir = "../../../../shared/testdata"

// Path returns the path of rel (slash-separated) under Dir.
func Path(rel string) string { return filepath.Join(Dir, filepath.FromSlash(rel)) }

// Missing ends the test for err, an error reading shared test data: a skip, or a failure when CI=true.
func Missing(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("shared test data: %v", err)
	}
	t.Skipf("shared test data missing: %v", err)
}

// Read returns the contents of rel under Dir, or ends the test as Missing does.
func Read(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(Path(rel))
	if err != nil {
		Missing(t, err)
	}
	return b
}

// Open opens rel under Dir (closed when the test ends), or ends the test as Missing does.
func Open(t testing.TB, rel string) *os.File {
	t.Helper()
	f, err := os.Open(Path(rel))
	if err != nil {
		Missing(t, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
