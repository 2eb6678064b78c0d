package arc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// field is one header field as received: Raw is the whole field with its folding and final CRLF.
type field struct {
	Name string // as written
	Raw  string
}

// value returns the field's value: everything after the colon, with the final CRLF.
func (f field) value() string {
	_, v, _ := strings.Cut(f.Raw, ":")
	return v
}

const maxHeader = 1 << 20 // bytes of header block read; a larger one is not judged

var errHeaderTooLong = errors.New("header block too large")

// readHeader reads the header block up to the empty line and returns its fields. Bare LF line ends are taken as CRLF.
func readHeader(br *bufio.Reader) ([]field, error) {
	var fields []field
	n := 0
	for {
		line, err := br.ReadString('\n')
		n += len(line)
		if n > maxHeader {
			return nil, errHeaderTooLong
		}
		if line == "" && err != nil {
			if err == io.EOF {
				return fields, nil
			}
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n") + "\r\n"
		switch {
		case line == "\r\n":
			return fields, nil
		case (line[0] == ' ' || line[0] == '\t') && len(fields) > 0:
			fields[len(fields)-1].Raw += line
		default:
			name, _, _ := strings.Cut(line, ":")
			fields = append(fields, field{Name: strings.TrimRight(name, " \t"), Raw: line})
		}
		if err != nil {
			return fields, nil
		}
	}
}

// canonHeader canonicalizes one field (RFC 6376 3.4.1 simple, 3.4.2 relaxed); the result ends with CRLF.
func canonHeader(raw string, relaxed bool) string {
	if !relaxed {
		return raw
	}
	k, v, _ := strings.Cut(raw, ":")
	v = strings.ReplaceAll(v, "\r\n", "")
	return strings.ToLower(strings.TrimRight(k, " \t")) + ":" + strings.Join(strings.Fields(v), " ") + "\r\n"
}

// canonBody streams the body of br through the body canonicalization (RFC 6376 3.4.3 simple, 3.4.4 relaxed) into
// w: trailing empty lines are dropped; an empty body is CRLF in simple and nothing in relaxed.
func canonBody(w io.Writer, br *bufio.Reader, relaxed bool) error {
	pending, wrote := 0, false
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
			if relaxed {
				line = relaxLine(line)
			}
			if line == "" {
				pending++
			} else {
				if _, werr := io.WriteString(w, strings.Repeat("\r\n", pending)+line+"\r\n"); werr != nil {
					return werr
				}
				pending, wrote = 0, true
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if !wrote && !relaxed {
		_, err := io.WriteString(w, "\r\n")
		return err
	}
	return nil
}

// relaxLine reduces each run of WSP to one SP and drops WSP at the end of the line.
func relaxLine(l string) string {
	if !strings.ContainsAny(l, " \t") {
		return l
	}
	var b strings.Builder
	space := false
	for i := 0; i < len(l); i++ {
		if c := l[i]; c == ' ' || c == '\t' {
			space = true
			continue
		} else {
			if space {
				b.WriteByte(' ')
			}
			space = false
			b.WriteByte(c)
		}
	}
	return b.String()
}

// parseTags parses a DKIM-style tag-list (RFC 6376 3.2) strictly, as the ARC suite demands: tag names are
// case-sensitive ALPHA *(ALPHA / DIGIT / "_"), no tag twice, no empty tag-spec except after the last ";", values
// without inner whitespace except folding inside b=, bh= and h= (which callers strip).
func parseTags(s string) (map[string]string, error) {
	out := map[string]string{}
	specs := strings.Split(s, ";")
	for i, spec := range specs {
		if strings.TrimSpace(spec) == "" {
			if i == len(specs)-1 && i > 0 {
				break // a trailing ";"
			}
			return nil, fmt.Errorf("empty tag")
		}
		k, v, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("tag without '='")
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !tagName.MatchString(k) {
			return nil, fmt.Errorf("bad tag name %q", k)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("tag %s twice", k)
		}
		out[k] = v
	}
	return out, nil
}

var tagName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// stripFWS removes all whitespace (b=, bh= and p= values are base64 with folding whitespace allowed).
func stripFWS(s string) string {
	return strings.Join(strings.Fields(s), "")
}

// withoutB returns the field with the value of its b= tag removed (RFC 6376 3.7: "b=" stays, its value goes).
func withoutB(raw string) string {
	return bTag.ReplaceAllString(raw, "${1}")
}

var bTag = regexp.MustCompile(`((?:^|[;:])[ \t\r\n]*b[ \t\r\n]*=)[^;]*`)
