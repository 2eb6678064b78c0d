package imapserver

import (
	netmail "net/mail"
	"time"

	"bytes"
	"errors"
	"github.com/postern/postern/internal/store"
	"strings"
)

// TEMPORARY: replaced by mail/msginfo once it is committed.

var errUnknownCTE = errors.New("unknown content-transfer-encoding")

type msgInfo struct{}

func (f *fetchMsg) parsed() (*msgInfo, error) { return &msgInfo{}, nil }

func (i *msgInfo) appendEnvelope(b []byte) []byte {
	return append(b, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"...)
}

func (i *msgInfo) appendBodyStructure(b []byte, ext bool) []byte {
	return append(b, `("TEXT" "PLAIN" NIL NIL NIL "7BIT" 0 0)`...)
}

func (f *fetchMsg) sectionBytes(s sectionSpec) ([]byte, error) {
	msg, err := f.load()
	if err != nil {
		return nil, err
	}
	if len(s.path) > 0 {
		return nil, nil
	}
	hdrEnd := bytes.Index(msg, []byte("\r\n\r\n"))
	if hdrEnd < 0 {
		hdrEnd = len(msg)
	} else {
		hdrEnd += 4
	}
	switch s.specifier {
	case "":
		return msg, nil
	case "HEADER":
		return msg[:hdrEnd], nil
	case "TEXT":
		return msg[hdrEnd:], nil
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		var out []byte
		lines := strings.SplitAfter(string(msg[:hdrEnd]), "\r\n")
		keep := false
		for _, l := range lines {
			if l == "\r\n" || l == "" {
				continue
			}
			if l[0] != ' ' && l[0] != '\t' {
				name, _, _ := strings.Cut(l, ":")
				in := false
				for _, f := range s.fields {
					if strings.EqualFold(f, strings.TrimSpace(name)) {
						in = true
					}
				}
				keep = in == (s.specifier == "HEADER.FIELDS")
			}
			if keep {
				out = append(out, l...)
			}
		}
		return append(out, "\r\n"...), nil
	}
	return nil, nil
}

func (f *fetchMsg) binaryBytes(path []int) ([]byte, error) {
	return f.sectionBytes(sectionSpec{path: path})
}

func (c *session) parseMeta(ref store.BlobRef) ([]byte, error) { return nil, nil }

func (f *fetchMsg) sentDate() (time.Time, error) {
	msg, err := f.load()
	if err != nil {
		return time.Time{}, err
	}
	m, err := netmail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return time.Time{}, nil
	}
	d, _ := m.Header.Date()
	return d, nil
}

func (f *fetchMsg) contains(op, field, value string) (bool, error) {
	msg, err := f.load()
	if err != nil {
		return false, err
	}
	return strings.Contains(strings.ToLower(string(msg)), strings.ToLower(value)), nil
}

func parseMetaBytes(b []byte) ([]byte, error) { return nil, nil }
