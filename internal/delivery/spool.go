package delivery

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/emersion/go-message/textproto"

	"github.com/postern/postern/internal/filter"
)

// defaultSpoolMemory is how much of a message is kept in memory for the DATA-stage checks before it spills to a
// file: most mail is far smaller, and a few MiB per session in flight stays modest.
const defaultSpoolMemory = 4 << 20

// spool holds a received message while the DATA-stage checks read it (several times: the virus scanner, spamd
// and the DKIM verifier each want the whole message). Small messages stay in memory; larger ones go to a temporary
// file in dir, removed by close.
type spool struct {
	mem     []byte
	file    *os.File
	removed bool // the file was unlinked at creation (it lives on while open)
	size    int64
}

// newSpool reads r to its end.
func newSpool(r io.Reader, dir string, memLimit int64) (*spool, error) {
	if memLimit <= 0 {
		memLimit = defaultSpoolMemory
	}
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, r, memLimit+1)
	if err != nil && err != io.EOF {
		return nil, err
	}
	if n <= memLimit {
		return &spool{mem: buf.Bytes(), size: n}, nil
	}
	f, err := os.CreateTemp(dir, "postern-spool-*")
	if err != nil {
		return nil, fmt.Errorf("create spool file: %w", err)
	}
	// Unlinked at once where the OS allows it: the file then vanishes with the process even after a crash.
	s := &spool{file: f, removed: os.Remove(f.Name()) == nil}
	if _, err := f.Write(buf.Bytes()); err != nil {
		s.close()
		return nil, fmt.Errorf("write spool file: %w", err)
	}
	m, err := io.Copy(f, r)
	if err != nil {
		s.close()
		return nil, err
	}
	s.size = n + m
	return s, nil
}

// open returns a reader over the whole message; each reader is independent.
func (s *spool) open() (io.ReadCloser, error) {
	if s.file == nil {
		return io.NopCloser(bytes.NewReader(s.mem)), nil
	}
	return io.NopCloser(io.NewSectionReader(s.file, 0, s.size)), nil
}

// message builds the filter's view of the spooled message and reports whether its header block parsed. One
// that does not is given as empty: the checks judge such mail by what they can read, it does not make delivery
// fail.
func (s *spool) message() (*filter.Message, bool) {
	m := &filter.Message{Size: s.size, Open: s.open}
	r, err := s.open()
	if err != nil {
		return m, false
	}
	defer r.Close()
	h, err := textproto.ReadHeader(bufio.NewReader(r))
	if err != nil {
		return m, false
	}
	m.Header = h
	return m, true
}

// close removes the spool file, if any.
func (s *spool) close() error {
	if s.file == nil {
		return nil
	}
	name := s.file.Name()
	err := s.file.Close()
	if !s.removed {
		if rmErr := os.Remove(name); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			err = errors.Join(err, rmErr)
		}
	}
	s.file = nil
	return err
}
