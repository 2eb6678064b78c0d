package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/postern/postern/internal/store"
)

func domainOf(address string) string {
	if i := strings.LastIndexByte(address, '@'); i >= 0 {
		return address[i+1:]
	}
	return address
}

// isUnique reports a UNIQUE/PRIMARY KEY violation.
func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// AddDomain adds a local domain.
func (s *Store) AddDomain(ctx context.Context, name string) error {
	name = strings.ToLower(name)
	_, err := s.wdb.ExecContext(ctx, `INSERT INTO domains (name, created_at) VALUES (?, ?)`, name, time.Now().Unix())
	if isUnique(err) {
		return fmt.Errorf("domain %s: %w", name, store.ErrExists)
	}
	return err
}

// RemoveDomain removes a domain that has no users and no aliases left: removing mail accounts is a separate,
// explicit step, so a typo cannot delete a domain's mail.
func (s *Store) RemoveDomain(ctx context.Context, name string) error {
	name = strings.ToLower(name)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var users, aliases int
		if err := tx.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM users WHERE domain = ?), (SELECT COUNT(*) FROM aliases WHERE domain = ?)`,
			name, name).Scan(&users, &aliases); err != nil {
			return fmt.Errorf("domain %s: %w", name, err)
		}
		if users+aliases > 0 {
			return fmt.Errorf("domain %s still has %d users and %d aliases; remove them first: %w", name, users, aliases, store.ErrExists)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM domains WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("domain %s: %w", name, store.ErrNotFound)
		}
		return nil
	})
}

// ListDomains lists domains by name.
func (s *Store) ListDomains(ctx context.Context) ([]store.Domain, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT name, created_at FROM domains ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Domain
	for rows.Next() {
		var d store.Domain
		var ts int64
		if err := rows.Scan(&d.Name, &ts); err != nil {
			return nil, err
		}
		d.CreatedAt = time.Unix(ts, 0)
		out = append(out, d)
	}
	return out, rows.Err()
}

// HasDomain reports whether name is a local domain.
func (s *Store) HasDomain(ctx context.Context, name string) (bool, error) {
	var n int
	err := s.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM domains WHERE name = ?`, strings.ToLower(name)).Scan(&n)
	return n > 0, err
}

// AddUser creates the user and its default mailboxes in one transaction.
func (s *Store) AddUser(ctx context.Context, u store.User) (store.User, error) {
	u.Address = strings.ToLower(u.Address)
	u.CreatedAt = time.Now().Truncate(time.Second)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		dom := domainOf(u.Address)
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM domains WHERE name = ?`, dom).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("domain %s: %w", dom, store.ErrNotFound)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO users (address, domain, password_hash, quota_bytes, created_at) VALUES (?, ?, ?, ?, ?)`,
			u.Address, dom, u.PasswordHash, u.QuotaBytes, u.CreatedAt.Unix())
		if isUnique(err) {
			return fmt.Errorf("user %s: %w", u.Address, store.ErrExists)
		}
		if err != nil {
			return err
		}
		u.ID, _ = res.LastInsertId()
		// The default mailboxes start subscribed, as clients expect to see them (Dovecot's auto = subscribe).
		for _, mb := range store.DefaultMailboxes {
			validity, err := nextUIDValidity(ctx, tx)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO mailboxes (user_id, name, uidvalidity, special_use) VALUES (?, ?, ?, ?)`,
				u.ID, mb.Name, validity, mb.SpecialUse); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO subscriptions (user_id, name) VALUES (?, ?)`, u.ID, mb.Name); err != nil {
				return err
			}
		}
		return nil
	})
	return u, err
}

const userCols = `id, address, password_hash, quota_bytes, created_at`

func scanUser(row interface{ Scan(...any) error }) (store.User, error) {
	var u store.User
	var ts int64
	err := row.Scan(&u.ID, &u.Address, &u.PasswordHash, &u.QuotaBytes, &ts)
	u.CreatedAt = time.Unix(ts, 0)
	return u, err
}

// GetUser finds a user by address.
func (s *Store) GetUser(ctx context.Context, address string) (store.User, error) {
	u, err := scanUser(s.rdb.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE address = ?`, strings.ToLower(address)))
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("user %s: %w", address, store.ErrNotFound)
	}
	return u, err
}

// GetUserByID finds a user by id.
func (s *Store) GetUserByID(ctx context.Context, id int64) (store.User, error) {
	u, err := scanUser(s.rdb.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("user #%d: %w", id, store.ErrNotFound)
	}
	return u, err
}

// ListUsers lists the users of domain, or all users when domain is "".
func (s *Store) ListUsers(ctx context.Context, domain string) ([]store.User, error) {
	q, args := `SELECT `+userCols+` FROM users ORDER BY address`, []any{}
	if domain != "" {
		q, args = `SELECT `+userCols+` FROM users WHERE domain = ? ORDER BY address`, []any{strings.ToLower(domain)}
	}
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

func (s *Store) execOne(ctx context.Context, what, q string, args ...any) error {
	res, err := s.wdb.ExecContext(ctx, q, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// SetPassword replaces a user's password hash.
func (s *Store) SetPassword(ctx context.Context, address, hash string) error {
	return s.execOne(ctx, "user "+address, `UPDATE users SET password_hash = ? WHERE address = ?`, hash, strings.ToLower(address))
}

// SetQuota sets a user's quota (0: unlimited).
func (s *Store) SetQuota(ctx context.Context, address string, quota int64) error {
	return s.execOne(ctx, "user "+address, `UPDATE users SET quota_bytes = ? WHERE address = ?`, quota, strings.ToLower(address))
}

// RemoveUser deletes a user with its mailboxes and messages; the blobs are collected by GCBlobs.
func (s *Store) RemoveUser(ctx context.Context, address string) error {
	return s.execOne(ctx, "user "+address, `DELETE FROM users WHERE address = ?`, strings.ToLower(address))
}

// SetAlias creates or replaces an alias.
func (s *Store) SetAlias(ctx context.Context, a store.Alias) error {
	targets, err := json.Marshal(a.Targets)
	if err != nil {
		return err
	}
	addr := strings.ToLower(a.Address)
	_, err = s.wdb.ExecContext(ctx, `INSERT INTO aliases (address, domain, targets) VALUES (?, ?, ?)
		ON CONFLICT (address) DO UPDATE SET targets = excluded.targets`, addr, domainOf(addr), string(targets))
	return err
}

// GetAlias finds an alias by address ("@domain" for a catch-all).
func (s *Store) GetAlias(ctx context.Context, address string) (store.Alias, error) {
	var targets string
	a := store.Alias{Address: strings.ToLower(address)}
	err := s.rdb.QueryRowContext(ctx, `SELECT targets FROM aliases WHERE address = ?`, a.Address).Scan(&targets)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("alias %s: %w", address, store.ErrNotFound)
	}
	if err != nil {
		return a, err
	}
	return a, json.Unmarshal([]byte(targets), &a.Targets)
}

// ListAliases lists all aliases by address.
func (s *Store) ListAliases(ctx context.Context) ([]store.Alias, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT address, targets FROM aliases ORDER BY domain, address`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Alias
	for rows.Next() {
		var a store.Alias
		var targets string
		if err := rows.Scan(&a.Address, &targets); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(targets), &a.Targets); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// RemoveAlias deletes an alias.
func (s *Store) RemoveAlias(ctx context.Context, address string) error {
	return s.execOne(ctx, "alias "+address, `DELETE FROM aliases WHERE address = ?`, strings.ToLower(address))
}

// SetAccess creates or replaces an access rule.
func (s *Store) SetAccess(ctx context.Context, r store.AccessRule) error {
	_, err := s.wdb.ExecContext(ctx, `INSERT INTO access (pattern, action) VALUES (?, ?)
		ON CONFLICT (pattern) DO UPDATE SET action = excluded.action`, strings.ToLower(r.Pattern), strings.ToUpper(r.Action))
	return err
}

// ListAccess lists the access table.
func (s *Store) ListAccess(ctx context.Context) ([]store.AccessRule, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT pattern, action FROM access ORDER BY pattern`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.AccessRule
	for rows.Next() {
		var r store.AccessRule
		if err := rows.Scan(&r.Pattern, &r.Action); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RemoveAccess deletes an access rule.
func (s *Store) RemoveAccess(ctx context.Context, pattern string) error {
	return s.execOne(ctx, "access rule "+pattern, `DELETE FROM access WHERE pattern = ?`, strings.ToLower(pattern))
}
