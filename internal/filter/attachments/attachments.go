// Package attachments is the check that refuses messages carrying dangerous attachments — executables, scripts,
// shortcuts, disk images — by file name extension or declared content type, without an anti-virus engine. It
// walks the MIME tree (multipart parts and attached message/rfc822 messages) and, unless told not to, the member
// names of zip archives. A hit is rejected at DATA with 554 5.7.1, naming the file, as Postfix's mime_header_checks
// and amavisd-new's banned_filename rules do.
//
// File names come from Content-Disposition's filename and Content-Type's name parameters (RFC 2183, RFC 2231
// continuations and charsets, and RFC 2047 encoded words as mail clients send them); the extension is the last
// one, after Windows' trimming of trailing dots and spaces ("invoice.pdf.exe." is exe).
//
// Config keys (wired by internal/app): [antivirus] dangerous_extensions → Options.Extensions, [antivirus]
// dangerous_content_types → Options.ContentTypes (nil: the defaults below; empty: none), [antivirus] scan_archives
// → !Options.SkipArchives, [antivirus] reject_encrypted_archives → Options.RejectEncryptedArchives.
package attachments

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"path"
	"strings"

	"github.com/emersion/go-message"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/engine"
)

// DefaultExtensions are refused when Options.Extensions is nil: what Windows runs or installs on a double click,
// the list Outlook and Gmail block, plus disk images often used to smuggle them.
func DefaultExtensions() []string {
	return []string{"ade", "adp", "app", "appx", "appxbundle", "bas", "bat", "chm", "cmd", "com", "cpl", "dll",
		"exe", "hta", "inf", "ins", "img", "iso", "isp", "jar", "js", "jse", "lnk", "mde", "msc", "msi", "msix",
		"msp", "mst", "pif", "ps1", "psm1", "reg", "scf", "scr", "sct", "shb", "sys", "url", "vb", "vbe", "vbs",
		"vhd", "vhdx", "vxd", "wsc", "wsf", "wsh", "xll"}
}

// DefaultContentTypes are refused when Options.ContentTypes is nil.
func DefaultContentTypes() []string {
	return []string{"application/x-msdownload", "application/x-msdos-program", "application/x-ms-dos-executable",
		"application/x-dosexec", "application/vnd.microsoft.portable-executable", "application/x-ms-installer",
		"application/x-msi", "application/hta", "application/x-ms-shortcut", "application/java-archive",
		"application/x-java-archive", "application/x-javascript", "application/x-vbscript", "text/vbscript"}
}

// Options configure the check. The zero value refuses the defaults and looks inside zip archives.
type Options struct {
	Extensions   []string // without the dot, case-insensitive; nil: DefaultExtensions
	ContentTypes []string // "type/subtype", case-insensitive; nil: DefaultContentTypes
	// SkipArchives turns off the look at zip archive member names.
	SkipArchives bool
	// MaxArchiveSize: larger archives are not opened (default 10 MiB).
	MaxArchiveSize int64
	// RejectEncryptedArchives refuses zip archives with encrypted members (their content cannot be scanned).
	RejectEncryptedArchives bool
	Logger                  *slog.Logger
}

// Check looks for dangerous attachments. It is safe for concurrent use.
type Check struct {
	o     Options
	exts  map[string]bool
	types map[string]bool
	log   *slog.Logger
}

// New returns a Check for o.
func New(o Options) (*Check, error) {
	if o.Extensions == nil {
		o.Extensions = DefaultExtensions()
	}
	if o.ContentTypes == nil {
		o.ContentTypes = DefaultContentTypes()
	}
	if o.MaxArchiveSize <= 0 {
		o.MaxArchiveSize = 10 << 20
	}
	c := &Check{o: o, exts: map[string]bool{}, types: map[string]bool{}, log: engine.Logger(o.Logger)}
	for _, e := range o.Extensions {
		e = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(e), "."))
		if e == "" || strings.ContainsAny(e, "./\\") {
			return nil, fmt.Errorf("attachments: bad extension %q", e)
		}
		c.exts[e] = true
	}
	for _, t := range o.ContentTypes {
		t = strings.ToLower(strings.TrimSpace(t))
		if !strings.Contains(t, "/") {
			return nil, fmt.Errorf("attachments: bad content type %q", t)
		}
		c.types[t] = true
	}
	return c, nil
}

// Name implements filter.Check.
func (c *Check) Name() string { return "attachments" }

// Limits on the walk: a message nested deeper or with more parts than this is not looked at further (it is still
// scanned by the other checks).
const (
	maxDepth = 20
	maxParts = 1000
	// maxArchiveMembers bounds the names read from one zip directory.
	maxArchiveMembers = 10000
)

// Finding is a dangerous attachment.
type Finding struct {
	File   string // the attachment's name ("" when it has none), "archive.zip/member" for archive members
	Type   string // its content type
	Reason string // "extension exe", "content type application/x-msdownload", "encrypted archive"
}

// errFound ends the walk at the first finding.
var errFound = errors.New("dangerous attachment")

// Scan walks the message read from r and returns the first dangerous attachment, if any.
func (c *Check) Scan(r io.Reader) (*Finding, error) {
	w := &walker{c: c}
	err := w.entity(r, 0)
	if errors.Is(err, errFound) {
		return w.found, nil
	}
	return nil, err
}

type walker struct {
	c     *Check
	parts int
	found *Finding
}

func (w *walker) entity(r io.Reader, depth int) error {
	e, err := message.Read(r)
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return fmt.Errorf("parse MIME: %w", err)
	}
	return w.walk(e, depth)
}

func (w *walker) walk(e *message.Entity, depth int) error {
	w.parts++
	if depth > maxDepth || w.parts > maxParts {
		return nil
	}
	ctype, _, _ := e.Header.ContentType()
	if err := w.check(e, ctype); err != nil {
		return err
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
				return fmt.Errorf("parse MIME part: %w", err)
			}
			if err := w.walk(p, depth+1); err != nil {
				return err
			}
		}
	}
	if ctype == "message/rfc822" || ctype == "message/global" {
		return w.entity(e.Body, depth+1)
	}
	return nil
}

// check looks at one part's names and type, and inside it when it is a zip archive.
func (w *walker) check(e *message.Entity, ctype string) error {
	names := filenames(e.Header)
	if w.c.types[ctype] {
		return w.hit(first(names), ctype, "content type "+ctype)
	}
	for _, n := range names {
		if ext := extension(n); w.c.exts[ext] {
			return w.hit(n, ctype, "extension "+ext)
		}
	}
	if w.c.o.SkipArchives || !isZip(ctype, names) {
		return nil
	}
	return w.zip(e.Body, first(names), ctype)
}

func (w *walker) zip(body io.Reader, name, ctype string) error {
	data, err := io.ReadAll(io.LimitReader(body, w.c.o.MaxArchiveSize+1))
	if err != nil || int64(len(data)) > w.c.o.MaxArchiveSize {
		return nil // unreadable or too big to open cheaply: the name checks above are all we do
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil // not a zip after all (or damaged): nothing to list
	}
	for i, f := range zr.File {
		if i >= maxArchiveMembers {
			break
		}
		if ext := extension(f.Name); w.c.exts[ext] {
			return w.hit(name+"/"+f.Name, ctype, "archive member with extension "+ext)
		}
		if w.c.o.RejectEncryptedArchives && f.Flags&0x1 != 0 { // APPNOTE 4.4.4 general purpose bit 0: encrypted
			return w.hit(name+"/"+f.Name, ctype, "encrypted archive")
		}
	}
	return nil
}

func (w *walker) hit(file, ctype, reason string) error {
	w.found = &Finding{File: file, Type: ctype, Reason: reason}
	return errFound
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func isZip(ctype string, names []string) bool {
	switch ctype {
	case "application/zip", "application/x-zip", "application/x-zip-compressed":
		return true
	}
	for _, n := range names {
		if extension(n) == "zip" {
			return true
		}
	}
	return false
}

// filenames returns the part's names from Content-Disposition filename and Content-Type name (RFC 2183 2.3;
// mime.ParseMediaType decodes RFC 2231), with RFC 2047 encoded words decoded as clients send them.
func filenames(h message.Header) []string {
	var out []string
	if _, p, err := h.ContentDisposition(); err == nil && p["filename"] != "" {
		out = append(out, decodeWords(p["filename"]))
	}
	if _, p, err := h.ContentType(); err == nil && p["name"] != "" {
		out = append(out, decodeWords(p["name"]))
	}
	return out
}

func decodeWords(s string) string {
	d := mime.WordDecoder{CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil }}
	if v, err := d.DecodeHeader(s); err == nil {
		return v
	}
	return s
}

// extension is the lower-case last extension of a file name, after the trailing dots and spaces Windows ignores
// are trimmed; the path is dropped (archive members and some clients send "dir/name" or "dir\name").
func extension(name string) string {
	name = strings.TrimRight(strings.ReplaceAll(name, "\\", "/"), ". \t\x00")
	ext := path.Ext(path.Base(name))
	return strings.ToLower(strings.TrimPrefix(ext, "."))
}

// Data implements filter.DataChecker.
func (c *Check) Data(ctx context.Context, t *filter.Txn, m *filter.Message) filter.Verdict {
	r, err := m.Open()
	if err != nil {
		return filter.Verdict{Action: filter.Tempfail, Code: 451, Enhanced: "4.3.0",
			Reason: fmt.Sprintf("attachments: open message: %v", err)}
	}
	defer r.Close()
	f, err := c.Scan(r)
	if err != nil {
		// A message that does not parse as MIME cannot carry a MIME attachment a client would open; let the
		// other checks judge it.
		c.log.Debug("attachments: MIME walk stopped", "queue_id", t.QueueID, "err", err)
		return filter.Verdict{}
	}
	if f == nil {
		return filter.Verdict{}
	}
	reason := fmt.Sprintf("dangerous attachment %q (%s, %s)", f.File, f.Type, f.Reason)
	c.log.Info("attachments: refused", "queue_id", t.QueueID, "file", f.File, "type", f.Type, "why", f.Reason)
	return filter.Verdict{Action: filter.Reject, Code: 554, Enhanced: "5.7.1",
		Message: "Message rejected: attachment type not allowed" + replyName(f.File), Reason: reason}
}

// replyName quotes a file name for the reply line: printable ASCII only, bounded.
func replyName(n string) string {
	var b strings.Builder
	for _, r := range n {
		if r >= ' ' && r < 0x7f && b.Len() < 80 {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return " (" + b.String() + ")"
}
