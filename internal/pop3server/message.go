package pop3server

import (
	"bufio"
	"bytes"
	"io"
)

// stuffer writes a stored message as the body of a multi-line response (RFC 1939 3): every line ends in CRLF
// (a bare LF becomes CRLF), a line that begins with "." gets one more ".", and a last line without a line end
// gets one. It can stop after the header and a number of body lines (TOP, RFC 1939 7). The termination line
// "." is not its business.
type stuffer struct {
	w         *bufio.Writer
	n         int64 // octets the client keeps after removing the stuffing
	lineStart bool  // the next octet starts a line
	lineEmpty bool  // the current line has no content so far
	pendingCR bool  // the last chunk ended in CR: CRLF split across chunks, or a bare CR
	inBody    bool  // the empty line after the header was sent
	bodyLeft  int   // body lines still to send; negative: all
	done      bool  // TOP has sent what it was asked for
	err       error
}

// newStuffer returns a stuffer that sends the whole message (bodyLines < 0) or the header and bodyLines lines
// of the body.
func newStuffer(w *bufio.Writer, bodyLines int) *stuffer {
	return &stuffer{w: w, lineStart: true, lineEmpty: true, bodyLeft: bodyLines}
}

// Write feeds message octets; it never fails because of the content.
func (s *stuffer) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 && !s.done && s.err == nil {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.text(p, true)
			break
		}
		line := p[:i]
		p = p[i+1:]
		switch {
		case len(line) == 0 && s.pendingCR: // "\r" | "\n": the CRLF straddled two chunks
			s.pendingCR = false
		case len(line) > 0 && line[len(line)-1] == '\r':
			s.text(line[:len(line)-1], false)
		default: // bare LF, or the rest of a line
			s.text(line, false)
		}
		s.endLine()
	}
	return total, s.err
}

// text sends line content; hold keeps a final CR back until the next chunk shows whether LF follows it.
func (s *stuffer) text(b []byte, hold bool) {
	if s.pendingCR {
		s.pendingCR = false
		s.emit([]byte{'\r'})
	}
	if hold && len(b) > 0 && b[len(b)-1] == '\r' {
		b, s.pendingCR = b[:len(b)-1], true
	}
	if len(b) > 0 {
		s.emit(b)
	}
}

func (s *stuffer) emit(b []byte) {
	if s.lineStart && b[0] == '.' {
		s.write([]byte{'.'}) // RFC 1939 3: byte-stuffing; not part of the message
	}
	s.lineStart, s.lineEmpty = false, false
	s.write(b)
	s.n += int64(len(b))
}

func (s *stuffer) endLine() {
	s.write([]byte("\r\n"))
	s.n += 2
	if !s.inBody {
		s.inBody = s.lineEmpty // the empty line ends the header (RFC 5322 2.1)
	} else if s.bodyLeft > 0 {
		s.bodyLeft--
	}
	if s.inBody && s.bodyLeft == 0 {
		s.done = true
	}
	s.lineStart, s.lineEmpty = true, true
}

func (s *stuffer) write(b []byte) {
	if s.err == nil {
		_, s.err = s.w.Write(b)
	}
}

// finish ends a last line that had no line end.
func (s *stuffer) finish() error {
	if s.done {
		return s.err
	}
	if s.pendingCR {
		s.pendingCR = false
		s.emit([]byte{'\r'})
	}
	if !s.lineStart {
		s.endLine()
	}
	return s.err
}

// copyMessage sends r through a stuffer and returns the octets the client keeps.
func copyMessage(w *bufio.Writer, r io.Reader, bodyLines int) (int64, error) {
	s := newStuffer(w, bodyLines)
	buf := make([]byte, 32<<10)
	for !s.done {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := s.Write(buf[:n]); werr != nil {
				return s.n, werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return s.n, err
		}
	}
	return s.n, s.finish()
}
