package filter

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/authres"
)

// WriteMessage copies the message r to w with the outcome applied to its header: o.Headers go on top, and the
// Authentication-Results fields that claim to come from this server (authserv-id o.StripAuthResults) are dropped —
// RFC 8601 5: an MTA MUST remove such fields that arrive from outside, or a sender could forge our verdicts.
// Every other byte of the message is copied as received. prefix (e.g. Return-Path) is written first.
func WriteMessage(w io.Writer, r io.Reader, prefix string, o Outcome) (int64, error) {
	cw := &countWriter{w: w}
	br := bufio.NewReaderSize(r, 64<<10)
	if _, err := io.WriteString(cw, prefix); err != nil {
		return cw.n, err
	}
	for _, h := range o.Headers {
		if _, err := fmt.Fprintf(cw, "%s: %s\r\n", h.Name, foldValue(h.Name, h.Value)); err != nil {
			return cw.n, err
		}
	}
	if o.StripAuthResults == "" {
		_, err := io.Copy(cw, br)
		return cw.n, err
	}
	hdr, err := textproto.ReadHeader(br)
	if err != nil {
		// Not a parseable header block: keep the message as it came (the checks saw it the same way).
		return cw.n, fmt.Errorf("filter: message header: %w", err)
	}
	fields := hdr.FieldsByKey("Authentication-Results")
	for fields.Next() {
		if claimsUs(fields.Value(), o.StripAuthResults) {
			fields.Del()
		}
	}
	if err := textproto.WriteHeader(cw, hdr); err != nil {
		return cw.n, err
	}
	_, err = io.Copy(cw, br)
	return cw.n, err
}

// claimsUs reports whether an Authentication-Results value names authservID. One that does not parse counts as
// ours when it mentions the id, since it cannot be told apart from a forgery of ours either.
func claimsUs(value, authservID string) bool {
	id, _, err := authres.Parse(value)
	if err != nil {
		return strings.Contains(strings.ToLower(value), strings.ToLower(authservID))
	}
	return strings.EqualFold(id, authservID)
}

// foldValue folds a long generated header value at spaces so no line passes 78 characters where it can be
// helped (RFC 5322 2.1.1). It never folds inside a quoted string, where the space is part of the value.
func foldValue(name, v string) string {
	if len(name)+2+len(v) <= 78 {
		return v
	}
	var b strings.Builder
	line := len(name) + 2
	for i, word := range splitUnquoted(v) {
		if i > 0 {
			if line+1+len(word) > 78 {
				b.WriteString("\r\n\t")
				line = 8
			} else {
				b.WriteByte(' ')
				line++
			}
		}
		b.WriteString(word)
		line += len(word)
	}
	return b.String()
}

// splitUnquoted splits v at the spaces outside quoted strings (with backslash escapes).
func splitUnquoted(v string) []string {
	var words []string
	start, quoted := 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == ' ' && !quoted:
			words = append(words, v[start:i])
			start = i + 1
		}
	}
	return append(words, v[start:])
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
