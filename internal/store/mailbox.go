package store

import (
	"context"
	"time"
)

// This file declares what the mail access servers (IMAP, POP3, POP2) need of a store beyond delivery: mailbox
// management, appends, flags with CONDSTORE mod-sequences, expunge with QRESYNC tombstones, copy/move and change
// notification. Every mutation is durable (committed with a durable sync) before it returns, so a server may
// answer OK right after.

// UIDRange is an inclusive range of UIDs; Stop == 0 means "to the end" (IMAP's "*").
type UIDRange struct {
	Start, Stop uint32
}

// Contains reports whether uid is in r.
func (r UIDRange) Contains(uid uint32) bool {
	return uid >= r.Start && (r.Stop == 0 || uid <= r.Stop)
}

// UIDSet is a union of ranges; nil or empty means "no message" (use []UIDRange{{1, 0}} for all).
type UIDSet []UIDRange

// Contains reports whether uid is in s.
func (s UIDSet) Contains(uid uint32) bool {
	for _, r := range s {
		if r.Contains(uid) {
			return true
		}
	}
	return false
}

// AllUIDs is the set of every UID.
var AllUIDs = UIDSet{{Start: 1, Stop: 0}}

// FlagOp says how StoreFlags changes flags (IMAP STORE FLAGS / +FLAGS / -FLAGS).
type FlagOp int

// The operations of StoreFlags.
const (
	FlagsReplace FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// StoreFlagsRequest changes the flags of messages in one mailbox.
type StoreFlagsRequest struct {
	MailboxID int64
	UIDs      UIDSet
	Op        FlagOp
	Flags     []string // system flags (`\Seen`, ...) and keywords; matched case-insensitively, stored as given
	// UnchangedSince, when not zero, is CONDSTORE's UNCHANGEDSINCE (RFC 7162 3.1.3): a message whose modseq is
	// greater is not changed and is reported in StoreFlagsResult.Modified.
	UnchangedSince uint64
}

// StoreFlagsResult reports what StoreFlags did.
type StoreFlagsResult struct {
	// Messages are all messages of the request that exist, with their flags and modseq after the change
	// (a message whose flags did not change keeps its modseq).
	Messages []Message
	// Modified lists UIDs not changed because of UnchangedSince.
	Modified []uint32
	// HighestModSeq of the mailbox after the change.
	HighestModSeq uint64
}

// ExpungeRequest removes messages from one mailbox.
type ExpungeRequest struct {
	MailboxID int64
	UIDs      UIDSet // nil: every message (subject to RequireDeleted)
	// RequireDeleted expunges only messages flagged \Deleted (IMAP EXPUNGE, CLOSE, UID EXPUNGE); POP3's UPDATE
	// state removes the DELE'd messages whatever their flags.
	RequireDeleted bool
}

// ExpungeResult lists the expunged UIDs in ascending order and the mailbox's new HIGHESTMODSEQ.
type ExpungeResult struct {
	UIDs          []uint32
	HighestModSeq uint64
}

// CopyRequest copies (or moves) messages between two mailboxes of the same user.
type CopyRequest struct {
	SrcMailboxID int64
	UIDs         UIDSet
	DstMailboxID int64
	Move         bool // remove the sources in the same transaction (RFC 6851)
}

// CopyResult maps source UIDs to new destination UIDs, pairwise, in ascending source order (RFC 4315 COPYUID).
type CopyResult struct {
	UIDValidity uint32 // of the destination
	SrcUIDs     []uint32
	DstUIDs     []uint32
	// SrcHighestModSeq is the source mailbox's HIGHESTMODSEQ after a move (its expunges raise it).
	SrcHighestModSeq uint64
}

// AppendRequest adds one message to a mailbox (IMAP APPEND). The blob is already durable in the BlobStore.
type AppendRequest struct {
	MailboxID    int64
	Blob         BlobRef
	Flags        []string
	InternalDate time.Time // zero: now
	Meta         []byte    // parsed structure (see Delivery.Meta)
}

// AppendResult is where the appended message landed (RFC 4315 APPENDUID).
type AppendResult struct {
	UIDValidity uint32
	UID         uint32
	ModSeq      uint64
}

// ChangeSet is what changed in a mailbox after a given mod-sequence (CONDSTORE/QRESYNC, and how sessions learn of
// other sessions' changes after a Notifier wake-up).
type ChangeSet struct {
	Messages      []Message // messages with modseq > since (new ones and ones whose flags changed), by UID
	Expunged      []uint32  // UIDs expunged with modseq > since, ascending
	HighestModSeq uint64
}

// MessageQuery selects messages of one mailbox.
type MessageQuery struct {
	MailboxID int64
	UIDs      UIDSet // nil: all
	WithMeta  bool   // fill Message.Meta (the cached parsed structure)
}

// MailboxStore is what IMAP, POP3 and POP2 need of the store.
//
// Names are full hierarchy names with "/" as the separator; "INBOX" is case-insensitive (RFC 9051 5.1), every
// other name case-sensitive. Errors wrap ErrNotFound, ErrExists and ErrQuotaExceeded where those apply.
type MailboxStore interface {
	// CreateMailbox creates one mailbox with a fresh UIDVALIDITY, never one a deleted mailbox of the same name
	// had (RFC 9051 2.3.1.1). It does not create parents.
	CreateMailbox(ctx context.Context, userID int64, name, specialUse string) (Mailbox, error)
	// DeleteMailbox removes a mailbox and its messages (not its children). INBOX cannot be deleted.
	DeleteMailbox(ctx context.Context, userID int64, name string) error
	// RenameMailbox renames a mailbox and every mailbox below it ("old/..." -> "new/..."), keeping UIDVALIDITY.
	// Renaming INBOX moves its messages into a new mailbox named newName and leaves INBOX empty (RFC 9051 6.3.6).
	RenameMailbox(ctx context.Context, userID int64, oldName, newName string) error
	GetMailboxByID(ctx context.Context, id int64) (Mailbox, error)
	// MailboxStatus returns one mailbox with its counters.
	MailboxStatus(ctx context.Context, mailboxID int64) (MailboxStatus, error)

	// Subscriptions are names, independent of whether the mailbox exists (RFC 9051 6.3.7).
	Subscribe(ctx context.Context, userID int64, name string) error
	Unsubscribe(ctx context.Context, userID int64, name string) error
	ListSubscriptions(ctx context.Context, userID int64) ([]string, error)

	// Messages lists messages by ascending UID. Without WithMeta it reads no message body and no parsed structure,
	// so listing 100,000 messages stays cheap.
	Messages(ctx context.Context, q MessageQuery) ([]Message, error)
	// MessageUIDs lists the UIDs of a mailbox in ascending order (what SELECT needs: no flags, no sizes).
	MessageUIDs(ctx context.Context, mailboxID int64) ([]uint32, error)

	Append(ctx context.Context, req AppendRequest) (AppendResult, error)
	StoreFlags(ctx context.Context, req StoreFlagsRequest) (StoreFlagsResult, error)
	Expunge(ctx context.Context, req ExpungeRequest) (ExpungeResult, error)
	Copy(ctx context.Context, req CopyRequest) (CopyResult, error)
	// FirstUnseen returns the lowest UID of a message without \Seen, or 0 when every message is seen (IMAP4rev1
	// SELECT's UNSEEN response code, RFC 3501 6.3.1). It reads no message body.
	FirstUnseen(ctx context.Context, mailboxID int64) (uint32, error)
	// Keywords lists the keywords set on at least one message of the mailbox, sorted (IMAP's FLAGS response,
	// RFC 9051 7.3.5). It reads no message body.
	Keywords(ctx context.Context, mailboxID int64) ([]string, error)
	// ClaimRecent hands the IMAP4rev1 \Recent flag (RFC 3501 2.3.2) of the messages up to upTo to one caller: it
	// returns the mailbox's FirstRecentUID as it was and moves it past upTo, atomically, so the messages with
	// from <= UID <= upTo are recent for this caller and for no one else. Nothing is written when nothing is new.
	ClaimRecent(ctx context.Context, mailboxID int64, upTo uint32) (from uint32, err error)
	// Changes reports what changed after sinceModSeq. Expunged UIDs are kept as tombstones so QRESYNC can report
	// VANISHED (RFC 7162 3.2.5.1).
	Changes(ctx context.Context, mailboxID int64, sinceModSeq uint64) (ChangeSet, error)

	// Notifier returns the change notifier of this store.
	Notifier() Notifier
}

// Notifier wakes sessions when a mailbox changes (delivery, append, flags, expunge, copy, rename, delete).
// A wake-up carries no data: the session asks Changes for what is new since its last known mod-sequence, so
// wake-ups may be coalesced and never need to be queued without bound.
type Notifier interface {
	// Subscribe returns a channel that receives a value after each committed change of the mailbox (coalesced:
	// capacity one, never blocks the writer) and a function that ends the subscription.
	Subscribe(mailboxID int64) (<-chan struct{}, func())
}
