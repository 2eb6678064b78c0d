//go:build integration

package integration

import (
	"fmt"
	"testing"
)

// jamesKnownFailures lists James scripts Postern does not pass YET, each with the cause found. Unlike jamesSkip
// (features out of scope by design) these are bugs or gaps of the IMAP server that issue #3 still has to fix:
// the scripts run every time, their first mismatch is printed, and a listed script that passes is reported so the
// list only shrinks. Any script not listed here or in jamesSkip must pass.
var jamesKnownFailures = map[string]string{
	"BodyPartialFetch":            "APPEND stores bare-LF lines as sent; partial offsets then differ from James' CRLF-normalized copy",
	"TextPartialFetch":            "APPEND stores bare-LF lines as sent; partial offsets then differ from James' CRLF-normalized copy",
	"ConcurrentExistsResponse":    "a FETCH FLAGS (\\Recent) update for another session's change arrives later than James expects",
	"FetchAllEmptyMailbox":        "FETCH 1:* in an empty mailbox: Postern answers BAD as RFC 9051 9 (seq-number) says; James answers OK",
	"FetchInternalDate":           "James' regex admits only +hhmm zones; Postern keeps the APPEND's -0700 zone (RFC 9051 2.3.3)",
	"FetchMultipartBodyStructure": "MIME type/subtype/encoding are sent in the message's case; James upper-cases them",
	"Move":                        "an untagged RECENT update is sent before the MOVE's tagged OK; James expects none there",
	"RenameInbox":                 "LIST after RENAME INBOX lacks the renamed mailbox's hierarchy as James lists it",
	"SearchAtoms":                 "ESEARCH RETURN (PARTIAL) (RFC 9394) is not offered yet",
	"Status":                      "STATUS (MAILBOXID) needs OBJECTID (RFC 8474), not offered yet",
}

// knownFailure stands in for the *testing.T of a script listed in jamesKnownFailures: a Fatal records the message
// and stops the script instead of failing the test.
type knownFailure struct {
	testing.TB
	msg string
}

// stopScript is the panic value Fatal uses to unwind out of the script.
type stopScript struct{}

func (k *knownFailure) Fatal(args ...any) { k.msg = fmt.Sprint(args...); panic(stopScript{}) }
func (k *knownFailure) Fatalf(format string, args ...any) {
	k.msg = fmt.Sprintf(format, args...)
	panic(stopScript{})
}

// run calls fn and turns a Fatal into a recorded failure.
func (k *knownFailure) run(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopScript); !ok {
				panic(r)
			}
		}
	}()
	fn()
}
