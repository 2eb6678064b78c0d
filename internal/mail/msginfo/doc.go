// Package msginfo parses an RFC 5322 / MIME message once, at delivery or IMAP APPEND, into what IMAP needs
// afterwards, so that FETCH, SEARCH and SORT never parse the message again:
//
//   - the ENVELOPE data (RFC 9051 7.5.2), raw as IMAP sends it;
//   - the BODYSTRUCTURE tree, with the byte offsets of every part's header and body in the stored message,
//     so BODY[1.2.MIME], BODY[2.TEXT] or HEADER.FIELDS are slices of the message (SectionBytes);
//   - SORT and THREAD keys (RFC 5256, RFC 5957);
//   - a compact Marshal/Unmarshal form for the store.
//
// It also writes ENVELOPE and BODY/BODYSTRUCTURE in IMAP syntax (AppendEnvelope, AppendBodyStructure),
// decodes parts for BINARY (BinaryBytes, RFC 3516) and matches SEARCH criteria on decoded text
// (HeaderContains, BodyContains, TextContains).
//
// # Why an own MIME scanner
//
// go-message (and mime/multipart under it) reads parts as streams: it exposes neither the offset of a
// part's header or body nor the line break that RFC 2046 5.1.1 assigns to the boundary, and it gives up on
// malformed structures. Parse is a single forward pass over lines with a stack of open boundaries: a line
// "--boundary" of ANY enclosing multipart ends the current part (RFC 2046 5.1.1, as Dovecot does; an exact
// match is preferred to a prefix match, the innermost multipart first), a missing close delimiter ends the
// multipart at the enclosing boundary or at the end, preamble and epilogue are skipped, CRLF and bare-LF
// messages work alike. Leaf bodies are skipped in bulk from the read buffer (bytes.Index for "\n-"), so
// Parse is O(n) with small constant memory besides the result. go-message is used where it fits: its
// charset tables (github.com/emersion/go-message/charset, imported for its Reader, which also registers it
// with go-message) convert non-UTF-8 text for SEARCH; mime.WordDecoder decodes RFC 2047 words. Address
// lists have their own small RFC 5322 tokenizer: net/mail and go-message/mail decode encoded-words (IMAP
// wants them raw) and reject a whole list for one malformed address.
//
// # Deliberate choices (changes to and precisions of the contract in notes/msginfo-api.md)
//
//   - Parse never fails on malformed mail; it returns an error only when the reader fails. Sizes, offsets
//     and line counts are those of the bytes read: parse exactly the stored bytes.
//   - Address.Group is the display name of the group an address belongs to; an empty group is one Address
//     with only Group set (see Address). Malformed addresses follow Dovecot: "From: foo" gives
//     (NIL NIL "foo" "MISSING_DOMAIN") (MissingDomain, MissingMailbox); a NIL host would read as a group
//     marker.
//   - Envelope strings are unfolded (CR and LF removed, the folding whitespace kept) and trimmed; "" is
//     NIL, so an empty Subject: is NIL too.
//   - Part gains Multipart (split at a boundary) and keeps Type/Subtype/parameter names in the case of the
//     message. A multipart without boundary is a leaf with its declared type, and a multipart without
//     parts is written with one empty text/plain part (both as Dovecot). message/rfc822 and message/global
//     are parsed as encapsulated messages (Part.Message, an *Info whose Sort is zero) unless their
//     Content-Transfer-Encoding is not 7bit/8bit/binary. Nesting beyond 100 levels and parts beyond 10000
//     are kept as raw bodies. Content-* headers are honoured without MIME-Version.
//   - text/* without charset parameter is written with ("charset" "us-ascii") added, missing
//     Content-Transfer-Encoding as "7bit"; body-fld-lines counts the line breaks of the body (the break
//     before a boundary belongs to the boundary).
//   - Strings are written quoted when 7-bit without CR, LF or NUL (quotes and backslashes escaped), else
//     as literals; strings longer than 1024 bytes as literals. NUL becomes 0x80.
//   - SectionBytes returns ErrNoSuchPart for a missing part and for HEADER/TEXT on a non-message part;
//     ErrBadSpecifier for an unknown specifier. HEADER.FIELDS keeps the fields as stored (folded).
//   - SortKeys.SubjectReply (reply/forward marker seen), msg-ids are stored without angle brackets;
//     DisplayFrom/DisplayTo keep their case. PartText, FindPart, Info.Size are extra helpers.
package msginfo
