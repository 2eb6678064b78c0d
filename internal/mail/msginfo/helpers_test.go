package msginfo

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// mustParse parses msg or fails the test.
func mustParse(t testing.TB, msg string) *Info {
	t.Helper()
	i, err := Parse(strings.NewReader(msg))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return i
}

// crlf turns the LF line ends of a test literal into CRLF.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// allPaths returns the part numbers of every addressable part of i (RFC 9051 6.4.5).
func allPaths(i *Info) [][]int {
	var out [][]int
	var walkMsg func(m *Info, prefix []int)
	var walkPart func(p *Part, path []int)
	walkPart = func(p *Part, path []int) {
		out = append(out, path)
		switch {
		case p.Message != nil:
			walkMsg(p.Message, path)
		case p.Multipart:
			for k, c := range p.Children {
				walkPart(c, append(append([]int{}, path...), k+1))
			}
		}
	}
	walkMsg = func(m *Info, prefix []int) {
		if m.Root.Multipart {
			for k, c := range m.Root.Children {
				walkPart(c, append(append([]int{}, prefix...), k+1))
			}
			return
		}
		p := m.Root
		out = append(out, append(append([]int{}, prefix...), 1))
		if p.Message != nil {
			walkMsg(p.Message, append(append([]int{}, prefix...), 1))
		}
	}
	walkMsg(i, nil)
	return out
}

// checkInfo checks everything that must hold for any input: offsets nested and in bounds, line counts,
// Marshal/Unmarshal round trip, well-formed IMAP output, section extraction in bounds.
func checkInfo(t testing.TB, msg []byte, i *Info) {
	t.Helper()
	n := int64(len(msg))
	if i.Root.HeaderStart != 0 || i.Root.BodyEnd != n {
		t.Fatalf("root spans [%d,%d), message has %d bytes", i.Root.HeaderStart, i.Root.BodyEnd, n)
	}
	checkPart(t, msg, i.Root, 0, n)

	b := i.Marshal()
	j, err := Unmarshal(b)
	if err != nil {
		t.Fatalf("Unmarshal(Marshal()): %v", err)
	}
	if b2 := j.Marshal(); !bytes.Equal(b, b2) {
		t.Fatalf("Marshal round trip differs")
	}
	if !i.Sort.Date.Equal(j.Sort.Date) {
		t.Fatalf("date round trip: %v != %v", i.Sort.Date, j.Sort.Date)
	}
	ic, jc := *i, *j
	ic.Sort.Date, jc.Sort.Date = ic.Sort.Date.UTC(), jc.Sort.Date.UTC()
	if !reflect.DeepEqual(&ic, &jc) {
		t.Fatalf("Unmarshal(Marshal()) differs:\n%+v\n%+v", ic, jc)
	}

	for _, ext := range []bool{false, true} {
		out := AppendBodyStructure(nil, i.Root, ext)
		if err := checkWire(out); err != nil {
			t.Fatalf("BODYSTRUCTURE(%v) %q: %v", ext, out, err)
		}
	}
	if out := AppendEnvelope(nil, &i.Envelope); checkWire(out) != nil {
		t.Fatalf("ENVELOPE %q: %v", out, checkWire(out))
	}

	specs := []string{"", "HEADER", "TEXT", "MIME", "HEADER.FIELDS", "HEADER.FIELDS.NOT"}
	for _, path := range append(allPaths(i), nil, []int{99}, []int{1, 99, 1}) {
		for _, s := range specs {
			got, err := i.SectionBytes(msg, Section{Path: path, Specifier: s, Fields: []string{"subject", "To"}})
			if err == nil && !strings.HasPrefix(s, "HEADER.FIELDS") && int64(len(got)) > n {
				t.Fatalf("section %v %s longer than the message", path, s)
			}
		}
		_, _ = i.BinaryBytes(msg, path)
	}
	HeaderContains(msg, i, "subject", "x")
	TextContains(msg, i, "zz")
}

// checkPart checks p and its subtree against the range [lo, hi) it must lie in.
func checkPart(t testing.TB, msg []byte, p *Part, lo, hi int64) {
	t.Helper()
	if !(lo <= p.HeaderStart && p.HeaderStart <= p.HeaderEnd && p.HeaderEnd == p.BodyStart &&
		p.BodyStart <= p.BodyEnd && p.BodyEnd <= hi) {
		t.Fatalf("part %s/%s offsets %d %d %d %d outside [%d,%d)", p.Type, p.Subtype, p.HeaderStart,
			p.HeaderEnd, p.BodyStart, p.BodyEnd, lo, hi)
	}
	body := msg[p.BodyStart:p.BodyEnd]
	if p.Size != int64(len(body)) {
		t.Fatalf("size %d, body %d", p.Size, len(body))
	}
	if l := int64(bytes.Count(body, []byte{'\n'})); p.Lines != l {
		t.Fatalf("lines %d, body has %d", p.Lines, l)
	}
	if p.Message != nil {
		r := p.Message.Root
		if r.HeaderStart != p.BodyStart || r.BodyEnd != p.BodyEnd {
			t.Fatalf("encapsulated message [%d,%d) != body [%d,%d)", r.HeaderStart, r.BodyEnd,
				p.BodyStart, p.BodyEnd)
		}
		checkPart(t, msg, r, p.BodyStart, p.BodyEnd)
	}
	if !p.Multipart && len(p.Children) > 0 {
		t.Fatalf("leaf with children")
	}
	prev := p.BodyStart
	for _, c := range p.Children {
		checkPart(t, msg, c, prev, p.BodyEnd)
		prev = c.BodyEnd
	}
}

// checkWire checks that b is one well-formed IMAP parenthesized list of NIL, numbers, quoted strings and
// literals (RFC 9051 9), as a client parser would read it.
func checkWire(b []byte) error {
	rest, err := wireValue(b, 0)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("trailing %q", rest)
	}
	return nil
}

func wireValue(b []byte, depth int) ([]byte, error) {
	if depth > 1000 {
		return nil, fmt.Errorf("too deep")
	}
	switch {
	case len(b) == 0:
		return nil, fmt.Errorf("unexpected end")
	case b[0] == '(':
		b = b[1:]
		for k := 0; ; k++ {
			if len(b) > 0 && b[0] == ')' {
				if k == 0 {
					return nil, fmt.Errorf("empty list")
				}
				return b[1:], nil
			}
			if k > 0 && b[0] == ' ' {
				b = b[1:]
			} else if k > 0 && b[0] != '(' {
				return nil, fmt.Errorf("missing space before %q", b[:min(len(b), 10)])
			}
			var err error
			if b, err = wireValue(b, depth+1); err != nil {
				return nil, err
			}
		}
	case b[0] == '"':
		for k := 1; k < len(b); k++ {
			switch c := b[k]; {
			case c == '\\':
				if k+1 >= len(b) || (b[k+1] != '"' && b[k+1] != '\\') {
					return nil, fmt.Errorf("bad escape")
				}
				k++
			case c == '"':
				return b[k+1:], nil
			case c == 0 || c == '\r' || c == '\n' || c >= 0x80:
				return nil, fmt.Errorf("bad char %#x in quoted string", c)
			}
		}
		return nil, fmt.Errorf("unterminated quoted string")
	case b[0] == '{':
		end := bytes.Index(b, []byte("}\r\n"))
		if end < 0 {
			return nil, fmt.Errorf("bad literal")
		}
		n, err := strconv.Atoi(string(b[1:end]))
		if err != nil || n > len(b)-end-3 {
			return nil, fmt.Errorf("bad literal length")
		}
		if bytes.IndexByte(b[end+3:end+3+n], 0) >= 0 {
			return nil, fmt.Errorf("NUL in literal")
		}
		return b[end+3+n:], nil
	case bytes.HasPrefix(b, []byte("NIL")):
		return b[3:], nil
	case b[0] >= '0' && b[0] <= '9':
		k := 0
		for k < len(b) && b[k] >= '0' && b[k] <= '9' {
			k++
		}
		return b[k:], nil
	}
	return nil, fmt.Errorf("unexpected %q", b[:min(len(b), 10)])
}
