// Package store declares the storage interfaces every backend implements and the value types they share.
//
// It holds no driver code: backends (store/sqlite, later store/postgres) import store, never the reverse.
// A message is a blob (the RFC 5322 bytes, stored once however many recipients it has) plus one row per mailbox
// copy. Durability contract: when Deliver returns nil, the blob has been fsynced (file and directory) and the
// metadata transaction committed with a durable sync; only then may a protocol server answer 250 / OK / +OK.
package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// Sentinel errors. Backends wrap them; callers decide with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrExists        = errors.New("already exists")
	ErrQuotaExceeded = errors.New("quota exceeded")
	ErrClosed        = errors.New("store closed")
)

// Access actions, as in sendmail's access db.
const (
	ActionOK      = "OK"
	ActionRelay   = "RELAY"
	ActionReject  = "REJECT"
	ActionDiscard = "DISCARD"
)

// Default mailboxes every user has, with their RFC 6154 SPECIAL-USE attribute.
var DefaultMailboxes = []struct{ Name, SpecialUse string }{
	{"INBOX", ""},
	{"Sent", `\Sent`},
	{"Drafts", `\Drafts`},
	{"Trash", `\Trash`},
	{"Junk", `\Junk`},
}

// Domain is a local (virtual) domain.
type Domain struct {
	Name      string // lower-case, ASCII (A-label) form
	CreatedAt time.Time
}

// User is a virtual user with a mailbox tree.
type User struct {
	ID           int64
	Address      string // normalized local@domain
	PasswordHash string // PHC string ($argon2id$... or $2a$...)
	QuotaBytes   int64  // 0: unlimited
	CreatedAt    time.Time
}

// Alias maps an address (or "@domain" for a catch-all) to targets, local or remote.
// A target of the form "@otherdomain" maps the local part onto another domain (virtusertable's %1@otherdomain).
type Alias struct {
	Address string
	Targets []string
}

// AccessRule is one entry of the access table: PATTERN (IP, CIDR, domain or address) -> ACTION.
type AccessRule struct {
	Pattern string
	Action  string
}

// DirectoryStore keeps domains, users, aliases and the access table.
// Reads go to the database every time so a running server sees CLI changes at once.
type DirectoryStore interface {
	AddDomain(ctx context.Context, name string) error
	RemoveDomain(ctx context.Context, name string) error
	ListDomains(ctx context.Context) ([]Domain, error)
	HasDomain(ctx context.Context, name string) (bool, error)

	// AddUser creates the user and its default mailboxes in one transaction; returns the stored user.
	AddUser(ctx context.Context, u User) (User, error)
	GetUser(ctx context.Context, address string) (User, error)
	GetUserByID(ctx context.Context, id int64) (User, error)
	ListUsers(ctx context.Context, domain string) ([]User, error) // domain "" lists all
	SetPassword(ctx context.Context, address, hash string) error
	SetQuota(ctx context.Context, address string, quotaBytes int64) error
	RemoveUser(ctx context.Context, address string) error

	SetAlias(ctx context.Context, a Alias) error // replaces the targets of an existing alias
	GetAlias(ctx context.Context, address string) (Alias, error)
	ListAliases(ctx context.Context) ([]Alias, error)
	RemoveAlias(ctx context.Context, address string) error

	SetAccess(ctx context.Context, r AccessRule) error
	ListAccess(ctx context.Context) ([]AccessRule, error)
	RemoveAccess(ctx context.Context, pattern string) error
}

// Mailbox is one folder of a user.
type Mailbox struct {
	ID            int64
	UserID        int64
	Name          string
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64
	SpecialUse    string
	Subscribed    bool
	// FirstRecentUID: messages from this UID on have not been seen by an IMAP session yet (RFC 3501 2.3.2
	// \Recent); MailboxStore.ClaimRecent moves it.
	FirstRecentUID uint32
}

// MailboxStatus is a mailbox with its counters (doveadm mailbox status).
type MailboxStatus struct {
	Mailbox
	Messages int
	Unseen   int
	Recent   int // messages from FirstRecentUID on
	Size     int64
}

// Message is one copy of a message in a mailbox.
type Message struct {
	ID           int64
	MailboxID    int64
	UID          uint32
	BlobID       string
	Size         int64
	InternalDate time.Time
	Flags        []string // system flags and keywords, e.g. `\Seen`, `$Junk`
	ModSeq       uint64
	SaveDate     time.Time // when this copy was saved into its mailbox (RFC 8514 SAVEDATE)
	Meta         []byte    // parsed structure of the blob (Delivery.Meta); only when asked for (MessageQuery.WithMeta)
}

// LocalCopy puts the message into one mailbox of a local user.
type LocalCopy struct {
	UserID  int64
	Mailbox string   // "INBOX" when empty
	Flags   []string // initial flags
}

// OutboundRecipient is one remote recipient of a queued message, with its DSN parameters (RFC 3461).
type OutboundRecipient struct {
	Address string
	Notify  []string // NEVER, SUCCESS, FAILURE, DELAY
	ORcpt   string
	Status  string // "queued", "sent", "failed"
	Error   string // last error text
	Remote  string `json:",omitempty"` // the host that gave the last answer, e.g. "mx.remote.net[192.0.2.7]"
	Warned  bool   `json:",omitempty"` // a delay DSN (RFC 3464 "delayed") has been sent for it
	// Notice is a delivery status notification owed to the sender about this recipient that is not committed
	// yet (building or storing it failed): the entry stays queued until it is, so a DSN is never lost.
	Notice *OutboundNotice `json:",omitempty"`
}

// OutboundNotice is one recipient's block of a DSN still to send (RFC 3464 2.3).
type OutboundNotice struct {
	Action     string // failed, delayed, relayed
	Status     string // RFC 3463 code, e.g. "5.1.1"
	Diagnostic string // the remote reply, e.g. "550 5.1.1 No such user"
}

// Outstanding reports whether the queue still owes work for r: a delivery, or a notice to the sender.
func (r OutboundRecipient) Outstanding() bool {
	return r.Status == "" || r.Status == "queued" || r.Notice != nil
}

// OutboundMessage is a message waiting in the durable outbound queue.
type OutboundMessage struct {
	ID          string // queue ID (same as the delivery's)
	From        string // envelope sender, "" for the null reverse-path
	Recipients  []OutboundRecipient
	BlobID      string
	Size        int64
	Ret         string // DSN RET: FULL or HDRS
	EnvID       string // DSN ENVID
	AuthUser    string // authenticated submitter, if any
	RequireTLS  bool   // REQUIRETLS (RFC 8689): deliver only over verified TLS to hops that offer REQUIRETLS
	Attempts    int
	NextAttempt time.Time
	LastError   string
	CreatedAt   time.Time
	// LeaseUntil is set while a queue worker holds the entry (QueueStore.LeaseQueued); zero when free. A worker
	// that dies holding a lease lets it run out, then another worker takes the entry again.
	LeaseUntil time.Time
}

// Delivery is one accepted message: its blob, the local copies and the outbound queue entry, committed atomically.
type Delivery struct {
	QueueID      string
	Blob         BlobRef
	InternalDate time.Time
	// Meta is the parsed structure of the blob (envelope, body structure, part offsets: mail/msginfo's encoding),
	// stored once per blob so IMAP FETCH ENVELOPE/BODYSTRUCTURE never re-parses the message. May be nil.
	Meta     []byte
	Local    []LocalCopy
	Outbound *OutboundMessage // nil when there are no remote recipients
}

// Mailstore keeps mailboxes and message copies.
type Mailstore interface {
	// Deliver commits d durably (group commit: concurrent calls share one transaction).
	// It fails with ErrQuotaExceeded (wrapped, naming the user) when a copy would exceed a user's quota;
	// then nothing of d is committed.
	Deliver(ctx context.Context, d *Delivery) error
	ListMailboxes(ctx context.Context, userID int64) ([]MailboxStatus, error)
	GetMailbox(ctx context.Context, userID int64, name string) (Mailbox, error)
	ListMessages(ctx context.Context, mailboxID int64) ([]Message, error)
	UsageBytes(ctx context.Context, userID int64) (int64, error)
}

// QueueStore is the durable outbound queue. Items enter it through Mailstore.Deliver.
type QueueStore interface {
	ListQueue(ctx context.Context) ([]OutboundMessage, error)
	GetQueued(ctx context.Context, id string) (OutboundMessage, error)
	RemoveQueued(ctx context.Context, id string) error
	// RetryQueued makes an item due now (all items when id is ""). For an item a worker holds, the request
	// outlives the attempt: its settle schedules the next attempt no later than the request.
	RetryQueued(ctx context.Context, id string) error
	// LeaseQueued claims up to limit entries that are due (NextAttempt <= now) and not held by a worker
	// (LeaseUntil <= now): their LeaseUntil becomes until, and they are returned oldest due first. Two callers,
	// in this process or another, never both hold one entry.
	LeaseQueued(ctx context.Context, now, until time.Time, limit int) ([]OutboundMessage, error)
	// SettleQueued ends a worker's lease on m.ID in one durable transaction: it commits bounce (the DSN for the
	// sender; nil for none), then removes the entry when no recipient of m is Outstanding, or else stores m's
	// Recipients, Attempts, NextAttempt (or the time of a RetryQueued made during the lease, when earlier) and
	// LastError and RequireTLS, and frees the lease. It fails with ErrNotFound, committing nothing, when the entry is gone or
	// no longer leased with m.LeaseUntil (the lease ran out and another worker took it).
	SettleQueued(ctx context.Context, m OutboundMessage, bounce *Delivery) error
	// RenewQueued extends a worker's lease on id from old to until (the worker's heartbeat). It fails with
	// ErrNotFound when the entry is gone or no longer leased with old.
	RenewQueued(ctx context.Context, id string, old, until time.Time) error
}

// BlobRef names a stored blob.
type BlobRef struct {
	ID   string
	Size int64
}

// BlobStore keeps message bodies. Put returns only after the bytes are durable (file and directory fsynced).
type BlobStore interface {
	Put(ctx context.Context, r io.Reader) (BlobRef, error)
	Open(ctx context.Context, id string) (io.ReadCloser, error)
	Delete(ctx context.Context, id string) error
}

// Store is everything one backend provides.
type Store interface {
	DirectoryStore
	Mailstore
	MailboxStore
	QueueStore
	Blobs() BlobStore
	Close() error
}
