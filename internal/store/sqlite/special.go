package sqlite

import (
	"context"
	"fmt"
)

// MailboxBySpecialUse returns the name of the user's mailbox with the RFC 6154 attribute use (e.g. `\Junk`), the
// oldest when several have it: delivery files spam into the \Junk mailbox even after the user renamed it.
// It fails with store.ErrNotFound when there is none.
func (s *Store) MailboxBySpecialUse(ctx context.Context, userID int64, use string) (string, error) {
	var name string
	err := s.rdb.QueryRowContext(ctx, `SELECT name FROM mailboxes WHERE user_id = ? AND special_use = ? ORDER BY id LIMIT 1`,
		userID, use).Scan(&name)
	if err != nil {
		return "", fmt.Errorf("%s mailbox of user #%d: %w", use, userID, notFound(err))
	}
	return name, nil
}
