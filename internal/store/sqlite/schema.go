package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are applied in order; each runs once, in its own transaction. Never edit one that has shipped:
// append a new one.
var migrations = []string{
	`CREATE TABLE domains (
		name TEXT PRIMARY KEY,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE users (
		id INTEGER PRIMARY KEY,
		address TEXT NOT NULL UNIQUE,
		domain TEXT NOT NULL REFERENCES domains(name),
		password_hash TEXT NOT NULL,
		quota_bytes INTEGER NOT NULL DEFAULT 0,
		used_bytes INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL
	);
	CREATE INDEX users_domain ON users(domain);
	CREATE TABLE aliases (
		address TEXT PRIMARY KEY,
		domain TEXT NOT NULL,
		targets TEXT NOT NULL
	);
	CREATE INDEX aliases_domain ON aliases(domain);
	CREATE TABLE access (
		pattern TEXT PRIMARY KEY,
		action TEXT NOT NULL
	);
	CREATE TABLE mailboxes (
		id INTEGER PRIMARY KEY,
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		name TEXT NOT NULL,
		uidvalidity INTEGER NOT NULL,
		uidnext INTEGER NOT NULL DEFAULT 1,
		highestmodseq INTEGER NOT NULL DEFAULT 1,
		special_use TEXT NOT NULL DEFAULT '',
		subscribed INTEGER NOT NULL DEFAULT 1,
		UNIQUE (user_id, name)
	);
	CREATE TABLE messages (
		id INTEGER PRIMARY KEY,
		mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
		uid INTEGER NOT NULL,
		blob_id TEXT NOT NULL,
		size INTEGER NOT NULL,
		internal_date INTEGER NOT NULL,
		flags TEXT NOT NULL DEFAULT '',
		modseq INTEGER NOT NULL,
		UNIQUE (mailbox_id, uid)
	);
	CREATE INDEX messages_blob ON messages(blob_id);
	CREATE TABLE queue (
		id TEXT PRIMARY KEY,
		sender TEXT NOT NULL,
		recipients TEXT NOT NULL,
		blob_id TEXT NOT NULL,
		size INTEGER NOT NULL,
		ret TEXT NOT NULL DEFAULT '',
		envid TEXT NOT NULL DEFAULT '',
		auth_user TEXT NOT NULL DEFAULT '',
		attempts INTEGER NOT NULL DEFAULT 0,
		next_attempt INTEGER NOT NULL,
		last_error TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL
	);
	CREATE INDEX queue_next ON queue(next_attempt);
	CREATE INDEX queue_blob ON queue(blob_id);`,

	// 2: users.used_bytes follows every insert and delete of a message, whoever makes it (IMAP EXPUNGE, a user's
	// removal), so the quota check on delivery stays one row read and can never drift. CONDSTORE's
	// CHANGEDSINCE (RFC 7162 3.1.4) searches messages by modseq within a mailbox.
	`CREATE TRIGGER messages_usage_insert AFTER INSERT ON messages BEGIN
		UPDATE users SET used_bytes = used_bytes + NEW.size
		WHERE id = (SELECT user_id FROM mailboxes WHERE id = NEW.mailbox_id);
	END;
	CREATE TRIGGER messages_usage_delete AFTER DELETE ON messages BEGIN
		UPDATE users SET used_bytes = used_bytes - OLD.size
		WHERE id = (SELECT user_id FROM mailboxes WHERE id = OLD.mailbox_id);
	END;
	UPDATE users SET used_bytes = (SELECT COALESCE(SUM(m.size), 0) FROM messages m
		JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.user_id = users.id);
	CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);`,

	// 3: what IMAP and POP need beyond delivery.
	// - subscriptions are names, independent of mailboxes (RFC 9051 6.3.7); seeded from mailboxes.subscribed, which
	//   is unused from now on.
	// - expunged keeps a tombstone per expunged UID with the modseq of its expunge, so QRESYNC can answer VANISHED
	//   (RFC 7162 3.2.5.1) and sessions learn of other sessions' expunges.
	// - messages.save_date is RFC 8514's SAVEDATE; existing copies get their internal date.
	// - blob_meta holds the parsed structure of a blob once, however many copies share the blob.
	// - counters.uidvalidity hands out UIDVALIDITY values: max(now, last+1), so a mailbox deleted and created again
	//   never gets a value it had before (RFC 9051 2.3.1.1), even within one second or after the clock went back.
	`CREATE TABLE subscriptions (
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		name TEXT NOT NULL,
		PRIMARY KEY (user_id, name)
	) WITHOUT ROWID;
	INSERT INTO subscriptions (user_id, name) SELECT user_id, name FROM mailboxes WHERE subscribed;
	CREATE TABLE expunged (
		mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
		uid INTEGER NOT NULL,
		modseq INTEGER NOT NULL,
		PRIMARY KEY (mailbox_id, uid)
	) WITHOUT ROWID;
	CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);
	ALTER TABLE messages ADD COLUMN save_date INTEGER NOT NULL DEFAULT 0;
	UPDATE messages SET save_date = internal_date;
	CREATE TABLE blob_meta (
		blob_id TEXT PRIMARY KEY,
		meta BLOB NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE counters (
		name TEXT PRIMARY KEY,
		value INTEGER NOT NULL
	) WITHOUT ROWID;
	INSERT INTO counters (name, value) SELECT 'uidvalidity', COALESCE(MAX(uidvalidity), 0) FROM mailboxes;`,

	// 4: queue leases. A worker owns an entry until lease_until (milliseconds); a crashed worker's lease runs
	// out and the entry is taken again, so a message is sent again at most once after a crash.
	`ALTER TABLE queue ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;`,

	// 5: IMAP.
	// - mailboxes.first_recent_uid: the messages from this UID on are \Recent for the next IMAP4rev1 session that
	//   selects the mailbox (RFC 3501 2.3.2), as Dovecot and Cyrus keep it; existing mailboxes start with nothing
	//   recent.
	// - messages.internal_tz: the zone offset (seconds east of UTC) of the INTERNALDATE an APPEND gave
	//   (RFC 9051 2.3.3); NULL for the server's local zone.
	`ALTER TABLE mailboxes ADD COLUMN first_recent_uid INTEGER NOT NULL DEFAULT 1;
	UPDATE mailboxes SET first_recent_uid = uidnext;
	ALTER TABLE messages ADD COLUMN internal_tz INTEGER;`,

	// 6: queue.require_tls: the message was submitted with REQUIRETLS (RFC 8689) and must keep it on every hop.
	`ALTER TABLE queue ADD COLUMN require_tls INTEGER NOT NULL DEFAULT 0;`,

	// 7: queue.retry_at: when an admin asked for a retry (queue flush/retry, milliseconds; 0: none) while a worker
	// held the entry, so the worker's settle does not push the next attempt past the request.
	`ALTER TABLE queue ADD COLUMN retry_at INTEGER NOT NULL DEFAULT 0;`,

	// 8: the per-user statistical spam filter (internal/filter/bayes): trained message counts, token counts (a
	// token is a 64-bit hash) and the content keys of trained messages, so each is learned once, in one class.
	`CREATE TABLE bayes_totals (
		user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
		nspam INTEGER NOT NULL DEFAULT 0,
		nham INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE bayes_tokens (
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		token INTEGER NOT NULL,
		nspam INTEGER NOT NULL DEFAULT 0,
		nham INTEGER NOT NULL DEFAULT 0,
		atime INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (user_id, token)
	) WITHOUT ROWID;
	CREATE TABLE bayes_seen (
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		msg_key TEXT NOT NULL,
		spam INTEGER NOT NULL,
		PRIMARY KEY (user_id, msg_key)
	) WITHOUT ROWID;`,

	// 9: a small key-value table with expiry (store.KV) for filter state: greylisting triplets and
	// whitelisted clients, daily per-domain send counters. Expired rows are purged by KVPurge.
	`CREATE TABLE kv (
		key TEXT PRIMARY KEY,
		value BLOB NOT NULL,
		expires INTEGER NOT NULL DEFAULT 0
	) WITHOUT ROWID;
	CREATE INDEX kv_expires ON kv(expires) WHERE expires > 0;`,
}

// migrate brings the schema to the newest version. Several processes may race here (server and CLI): the
// version check and each migration run inside one IMMEDIATE transaction, so only one applies it.
func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: schema_version: %w", err)
	}
	for {
		done, err := migrateOne(ctx, db)
		if err != nil || done {
			return err
		}
	}
}

func migrateOne(ctx context.Context, db *sql.DB) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("sqlite: migrate: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return false, fmt.Errorf("sqlite: read schema version: %w", err)
	}
	if v > len(migrations) {
		return false, fmt.Errorf("sqlite: database schema %d is newer than this postern (%d): upgrade postern", v, len(migrations))
	}
	if v == len(migrations) {
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
		return false, fmt.Errorf("sqlite: migration %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM schema_version`); err != nil {
		return false, fmt.Errorf("sqlite: migration %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version VALUES (?)`, v+1); err != nil {
		return false, fmt.Errorf("sqlite: migration %d: %w", v+1, err)
	}
	return false, tx.Commit()
}
