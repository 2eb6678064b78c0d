package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/postern/postern/internal/store"
)

func TestMailboxBySpecialUse(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, Options{Path: filepath.Join(t.TempDir(), "s.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.AddDomain(ctx, "example.org")
	u, err := st.AddUser(ctx, store.User{Address: "u@example.org", PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if name, err := st.MailboxBySpecialUse(ctx, u.ID, `\Junk`); err != nil || name != "Junk" {
		t.Fatalf("default Junk: %q %v", name, err)
	}
	if err := st.RenameMailbox(ctx, u.ID, "Junk", "Spam"); err != nil {
		t.Fatal(err)
	}
	if name, err := st.MailboxBySpecialUse(ctx, u.ID, `\Junk`); err != nil || name != "Spam" {
		t.Fatalf("renamed Junk: %q %v", name, err)
	}
	if _, err := st.MailboxBySpecialUse(ctx, u.ID, `\Archive`); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}
