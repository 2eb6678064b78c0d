package directory

import (
	"errors"

	"github.com/postern/postern/internal/mail"
	"github.com/postern/postern/internal/store"
)

// ErrUnknownRecipient is returned for an address in a local domain that matches no user, alias or catch-all.
var ErrUnknownRecipient = errors.New("unknown recipient")

// Resolution is where mail for one recipient goes after alias expansion.
type Resolution struct {
	Users  []store.User   // local mailboxes, deduplicated
	Remote []mail.Address // remote addresses (alias targets outside local domains, or non-local recipients)
}
