package imapserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The command reader is streaming: a command is read line by line, and a literal ({n}, {n+}, {n-}, ~{n}) is read
// only when the parser reaches it, after its size has been checked. A synchronizing literal gets its "+"
// continuation only then (RFC 9051 7.5); a non-synchronizing one (RFC 7888 LITERAL+) arrives unasked.
//
// The parser keeps the first error (sticky): every method returns a zero value once p.err is set, so a command
// handler parses straight through and checks p.err before it acts. Bad input is answered with BAD; nothing the
// client sends makes the parser panic.

// errTooBig marks a literal larger than allowed.
var errTooBig = errors.New("literal too big")

// syntaxError is bad client input: answered with BAD and the session goes on.
type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return e.msg }

// literalError is a literal that cannot be accepted. Sync: the client waits for our "+" and sent nothing more;
// non-sync: its octets are on the way, so the session cannot resynchronize and ends.
type literalError struct {
	size int64
	sync bool
}

func (e *literalError) Error() string { return fmt.Sprintf("literal of %d octets is too big", e.size) }
func (e *literalError) Unwrap() error { return errTooBig }

// ioError wraps a read failure: the session ends.
type ioError struct{ err error }

func (e *ioError) Error() string { return e.err.Error() }
func (e *ioError) Unwrap() error { return e.err }

// source is the client byte stream with the limits of the parser.
type source struct {
	br       *bufio.Reader
	maxLine  int
	maxSmall int64        // total in-memory literal octets in one command (APPEND streams instead)
	cont     func() error // sends "+ ..." and flushes (the synchronizing literal's continuation)
	head     []byte       // the first octets of the last over-long line (for its tag)
}

// readLine reads one line without its CRLF (a bare LF is accepted). An over-long line is consumed to its end and
// reported as tooLong.
func (s *source) readLine() (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		frag, err := s.br.ReadSlice('\n')
		if !tooLong {
			buf = append(buf, frag...)
			if len(buf) > s.maxLine+2 {
				s.head = append(s.head[:0], buf[:min(len(buf), 64)]...)
				tooLong, buf = true, nil
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return nil, tooLong, err
		}
		if tooLong {
			return nil, true, nil
		}
		buf = bytes.TrimSuffix(buf, []byte{'\n'})
		buf = bytes.TrimSuffix(buf, []byte{'\r'})
		return buf, false, nil
	}
}

// parser parses one command.
type parser struct {
	src    *source
	line   []byte
	pos    int
	err    error
	budget int64 // in-memory literal octets left
	utf8   bool  // UTF8=ACCEPT or IMAP4rev2: mailbox names are UTF-8, not modified UTF-7
	done   bool  // the command's last line was consumed to its end (no literal announced there is pending)
}

func newParser(src *source, line []byte) *parser {
	return &parser{src: src, line: line, budget: src.maxSmall}
}

// fail records the first error.
func (p *parser) fail(format string, args ...any) {
	if p.err == nil {
		p.err = &syntaxError{fmt.Sprintf(format, args...)}
	}
}

func (p *parser) ok() bool { return p.err == nil }

// atEnd reports whether the current line is consumed.
func (p *parser) atEnd() bool { return p.pos >= len(p.line) }

// peek returns the next byte, 0 at the end of the line or after an error.
func (p *parser) peek() byte {
	if p.err != nil || p.atEnd() {
		return 0
	}
	return p.line[p.pos]
}

// has reports (and consumes) the literal prefix s, compared case-insensitively.
func (p *parser) has(s string) bool {
	if p.err != nil || len(p.line)-p.pos < len(s) {
		return false
	}
	if !strings.EqualFold(string(p.line[p.pos:p.pos+len(s)]), s) {
		return false
	}
	p.pos += len(s)
	return true
}

// expect consumes s or fails.
func (p *parser) expect(s string) {
	if p.err != nil {
		return
	}
	if !p.has(s) {
		p.fail("expected %q at position %d", s, p.pos)
	}
}

func (p *parser) sp() { p.expect(" ") }

// end requires the end of the command.
func (p *parser) end() {
	if p.err != nil {
		return
	}
	if rest := p.line[p.pos:]; len(bytes.TrimRight(rest, " ")) == 0 && len(rest) > 0 {
		p.pos = len(p.line) // trailing spaces: a slip no command means anything by, tolerated as Dovecot does
	}
	if !p.atEnd() {
		p.fail("unexpected characters at the end of the command: %q", clip(p.line[p.pos:], 40))
		return
	}
	p.done = true
}

func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// Character classes (RFC 9051 9, formal syntax).
func isAtomChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

func isAstringChar(c byte) bool { return isAtomChar(c) || c == ']' }
func isListChar(c byte) bool    { return isAtomChar(c) || c == '%' || c == '*' || c == ']' }
func isTagChar(c byte) bool     { return isAstringChar(c) && c != '+' }
func isDigit(c byte) bool       { return c >= '0' && c <= '9' }

// take consumes 1*char of class f.
func (p *parser) take(f func(byte) bool, what string) string {
	if p.err != nil {
		return ""
	}
	start := p.pos
	for p.pos < len(p.line) && f(p.line[p.pos]) {
		p.pos++
	}
	if p.pos == start {
		p.fail("expected %s at position %d", what, start)
		return ""
	}
	return string(p.line[start:p.pos])
}

func (p *parser) atom() string { return p.take(isAtomChar, "atom") }

// word reads a letter/digit/"."/"-" token such as a command name, fetch item or search key; upper-cased.
func (p *parser) word() string {
	return strings.ToUpper(p.take(func(c byte) bool {
		return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || isDigit(c) || c == '.' || c == '-' || c == '=' || c == '_'
	}, "keyword"))
}

// number reads a number (RFC 9051: number = 1*DIGIT, at most 2^32-1).
func (p *parser) number() uint32 {
	n := p.number64()
	if p.err == nil && n > 1<<32-1 {
		p.fail("number out of range")
	}
	return uint32(n)
}

func (p *parser) nzNumber() uint32 {
	n := p.number()
	if p.err == nil && n == 0 {
		p.fail("expected a non-zero number")
	}
	return n
}

// number64 reads a number up to 2^63-1 (RFC 9051 number64).
func (p *parser) number64() uint64 {
	s := p.take(isDigit, "number")
	if p.err != nil {
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		p.fail("number out of range")
	}
	return n
}

// quoted reads a quoted string (the opening DQUOTE is next).
func (p *parser) quoted() string {
	p.expect(`"`)
	var b []byte
	for p.err == nil {
		if p.atEnd() {
			p.fail("unterminated quoted string")
			break
		}
		c := p.line[p.pos]
		p.pos++
		switch {
		case c == '"':
			if !utf8.Valid(b) {
				p.fail("quoted string is not UTF-8")
			}
			return string(b)
		case c == '\\':
			if p.atEnd() || (p.line[p.pos] != '"' && p.line[p.pos] != '\\') {
				p.fail(`bad escape in quoted string`)
				break
			}
			b = append(b, p.line[p.pos])
			p.pos++
		case c == 0 || c == '\r' || c == '\n':
			p.fail("bad character in quoted string")
		default:
			b = append(b, c)
		}
	}
	return ""
}

// literalHeader parses "{n}", "{n+}", "{n-}" (and "~{...}" when binary is allowed) which must end the line.
func (p *parser) literalHeader(binary bool) (n int64, sync bool) {
	if binary {
		p.has("~")
	}
	p.expect("{")
	v := p.number64()
	sync = true
	if p.has("+") || p.has("-") {
		sync = false
	}
	p.expect("}")
	if p.err == nil && !p.atEnd() {
		p.fail("literal must end the line")
	}
	if p.err != nil {
		return 0, false
	}
	p.pos = len(p.line)
	return int64(v), sync
}

// literal reads an in-memory literal (string arguments: passwords, search strings, mailbox names).
func (p *parser) literal() []byte {
	n, sync := p.literalHeader(false)
	if p.err != nil {
		return nil
	}
	if n > p.budget {
		p.err = &literalError{size: n, sync: sync}
		p.done = true
		return nil
	}
	p.budget -= n
	if sync {
		if err := p.src.cont(); err != nil {
			p.err = &ioError{err}
			return nil
		}
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(p.src.br, b); err != nil {
		p.err = &ioError{err}
		return nil
	}
	p.nextLine()
	return b
}

// nextLine reads the rest of the command after a literal.
func (p *parser) nextLine() {
	line, tooLong, err := p.src.readLine()
	switch {
	case err != nil:
		p.err = &ioError{err}
	case tooLong:
		p.err = &syntaxError{"line too long"}
		p.done = true
	}
	p.line, p.pos = line, 0
}

// str reads a string: quoted or literal.
func (p *parser) str() string {
	switch p.peek() {
	case '"':
		return p.quoted()
	case '{':
		b := p.literal()
		if p.err == nil && bytes.IndexByte(b, 0) >= 0 {
			p.fail("NUL in literal string")
		}
		return string(b)
	}
	p.fail("expected a string at position %d", p.pos)
	return ""
}

// astring reads an atom-or-string.
func (p *parser) astring() string {
	switch p.peek() {
	case '"', '{':
		return p.str()
	}
	return p.take(p.utf8Class(isAstringChar), "string")
}

// utf8Class extends a character class with 8-bit octets in a UTF-8 session (lenient, as Dovecot is: RFC 9051
// wants UTF-8 names quoted, but clients send them bare).
func (p *parser) utf8Class(f func(byte) bool) func(byte) bool {
	if !p.utf8 {
		return f
	}
	return func(c byte) bool { return f(c) || c >= 0x80 }
}

// nstring reads a string or NIL; ok is false for NIL.
func (p *parser) nstring() (string, bool) {
	if p.peek() != '"' && p.peek() != '{' {
		if p.has("NIL") {
			return "", false
		}
	}
	return p.str(), p.err == nil
}

// mailbox reads a mailbox name and converts it to the store's UTF-8 form (RFC 9051 5.1: INBOX any case).
func (p *parser) mailbox() string {
	raw := p.astring()
	return p.mailboxName(raw)
}

// listMailbox reads a LIST pattern (list-mailbox: wildcards allowed).
func (p *parser) listMailbox() string {
	var raw string
	switch p.peek() {
	case '"', '{':
		raw = p.str()
	default:
		raw = p.take(p.utf8Class(isListChar), "mailbox pattern")
	}
	if p.err != nil {
		return ""
	}
	return p.decodeName(raw)
}

// mailboxName normalizes a client mailbox name.
func (p *parser) mailboxName(raw string) string {
	if p.err != nil {
		return ""
	}
	name := p.decodeName(raw)
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	if len(name) > 6 && strings.EqualFold(name[:6], "INBOX/") {
		return "INBOX" + name[5:]
	}
	return name
}

// decodeName turns modified UTF-7 into UTF-8 unless the session uses UTF-8 names. A name that is not valid
// mUTF-7 is taken as it is (RFC 9051 5.1.3 asks servers to refuse creating such names; CREATE checks).
func (p *parser) decodeName(raw string) string {
	if p.utf8 {
		return raw
	}
	if s, err := decodeMUTF7(raw); err == nil {
		return s
	}
	return raw
}

// flag reads a flag: "\" atom (system flag) or a keyword; `\*` only when star is allowed.
func (p *parser) flag() string {
	if p.has(`\`) {
		if p.peek() == '*' {
			p.fail(`\* is not a flag`)
			return ""
		}
		return canonicalFlag(`\` + p.atom())
	}
	return p.atom()
}

// flagList reads "(" [flag *(SP flag)] ")" or, when bare is true, also a flag list without parentheses (STORE).
func (p *parser) flagList(bare bool) []string {
	var flags []string
	paren := p.has("(")
	if !paren && !bare {
		p.fail("expected a flag list")
		return nil
	}
	for p.ok() && !(paren && p.peek() == ')') && !p.atEnd() {
		if len(flags) > 0 {
			p.sp()
		}
		flags = append(flags, p.flag())
		if !paren && p.peek() != ' ' {
			break
		}
	}
	if paren {
		p.expect(")")
	}
	return flags
}

// systemFlags are the RFC 9051 2.3.2 system flags in their canonical spelling.
var systemFlags = []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`, `\Recent`}

// canonicalFlag spells a system flag canonically (flags are case-insensitive).
func canonicalFlag(f string) string {
	for _, s := range systemFlags {
		if strings.EqualFold(s, f) {
			return s
		}
	}
	return f
}

// date reads date = date-text / DQUOTE date-text DQUOTE; date-text = date-day "-" date-month "-" date-year.
func (p *parser) date() time.Time {
	q := p.has(`"`)
	day := p.take(isDigit, "day")
	p.expect("-")
	mon := p.take(func(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }, "month")
	p.expect("-")
	year := p.take(isDigit, "year")
	if q {
		p.expect(`"`)
	}
	if p.err != nil {
		return time.Time{}
	}
	t, err := time.Parse("2-Jan-2006", day+"-"+mon+"-"+year)
	if err != nil || len(day) > 2 || len(year) != 4 {
		p.fail("bad date")
		return time.Time{}
	}
	return t
}

// dateTime reads date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE.
func (p *parser) dateTime() time.Time {
	s := p.quoted()
	if p.err != nil {
		return time.Time{}
	}
	s = strings.TrimLeft(s, " ")
	t, err := time.Parse("2-Jan-2006 15:04:05 -0700", s)
	if err != nil {
		p.fail("bad date-time %q", s)
	}
	return t
}

// skipRest discards what is left of a failed command so the next command is found: the rest of the line and,
// when the line announced a non-synchronizing literal, its octets and the lines after it.
func (p *parser) skipRest() error {
	var ie *ioError
	if errors.As(p.err, &ie) {
		return ie.err
	}
	var le *literalError
	if errors.As(p.err, &le) {
		if le.sync {
			return nil
		}
		return le
	}
	if p.done {
		return nil
	}
	line := p.line
	for {
		n, sync, ok := trailingLiteral(line)
		if !ok || sync {
			return nil
		}
		if n > p.src.maxSmall*4+(1<<20) {
			return &literalError{size: n}
		}
		if _, err := p.src.br.Discard(int(n)); err != nil {
			return err
		}
		var tooLong bool
		var err error
		line, tooLong, err = p.src.readLine()
		if err != nil {
			return err
		}
		if tooLong {
			return nil
		}
	}
}

// trailingLiteral finds a literal marker "{n}", "{n+}" or "{n-}" at the end of line.
func trailingLiteral(line []byte) (n int64, sync, ok bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false, false
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false, false
	}
	num := line[i+1 : len(line)-1]
	sync = true
	if l := len(num); l > 0 && (num[l-1] == '+' || num[l-1] == '-') {
		sync, num = false, num[:l-1]
	}
	v, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil || v < 0 {
		return 0, false, false
	}
	return v, sync, true
}
