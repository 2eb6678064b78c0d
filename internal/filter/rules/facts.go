package rules

import (
	"bytes"
	"mime"
	"net/mail"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
	"golang.org/x/net/publicsuffix"

	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/mail/msginfo"
)

// facts is what the rules look at, computed once per message.
type facts struct {
	txn        *filter.Txn
	now        time.Time
	raw        []byte              // the message as read (at most Options.MaxBytes)
	header     textproto.Header    // top-level header fields
	info       *msginfo.Info       // MIME structure of raw
	text       string              // decoded text of the text parts (HTML without tags), lower-cased
	shouts     int                 // words of 4 letters or more in capitals in the text
	words      int                 // words in the text
	subj       string              // decoded Subject
	links      []link              // http(s) links of the text and HTML parts
	parts      partStats           // what the MIME tree holds
	from       *mail.Address       // the From address; nil when missing or malformed
	date       time.Time           // the parsed Date; zero when missing or invalid
	hasGT      bool                // the GTUBE string is in the message
	phraseTab  map[string][]phrase // the check's phrase groups
	phraseHits map[string]int      // phrase group -> patterns of it found (computed on first use)
	hay        string              // lower-cased subject and text, whitespace folded (computed on first use)
	rcpts      int                 // addresses in To and Cc
}

// link is one http(s) URL, with the visible text of its HTML anchor when it had one.
type link struct {
	host     string // lower-case host without port and userinfo
	path     string // lower-case path and query (from the first "/"), at most 300 bytes
	userinfo bool   // user@ before the host (http://bank.example@evil.example/)
	text     string // anchor text, trimmed, lower-cased; "" for links found in plain text
}

// partStats counts what kinds of parts the MIME tree holds.
type partStats struct {
	plain, html     int
	base64Text      int
	unknownCharset  bool
	missingBoundary bool
	images          int // <img> tags in HTML parts
	htmlTextBytes   int // visible text in HTML parts
}

// wordDecoder decodes RFC 2047 encoded-words with go-message's charset tables.
var wordDecoder = mime.WordDecoder{CharsetReader: charset.Reader}

func decodeHeader(v string) string {
	if d, err := wordDecoder.DecodeHeader(v); err == nil {
		return d
	}
	return v
}

// gtube is SpamAssassin's Generic Test for Unsolicited Bulk Email: any message holding it is spam.
const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// newFacts parses raw (whose header is hdr) once for every rule.
func newFacts(t *filter.Txn, now time.Time, hdr textproto.Header, raw []byte) *facts {
	f := &facts{txn: t, now: now, raw: raw, header: hdr, subj: decodeHeader(hdr.Get("Subject")), phraseHits: map[string]int{}}
	f.hasGT = bytes.Contains(raw, []byte(gtube))
	if v := hdr.Get("From"); v != "" {
		if a, err := mail.ParseAddress(decodeHeader(v)); err == nil && strings.Contains(a.Address, "@") {
			f.from = a
		}
	}
	if v := hdr.Get("Date"); v != "" {
		if d, err := mail.ParseDate(v); err == nil {
			f.date = d
		}
	}
	for _, k := range []string{"To", "Cc"} {
		for _, v := range hdr.Values(k) {
			if l, err := mail.ParseAddressList(decodeHeader(v)); err == nil {
				f.rcpts += len(l)
			} else {
				f.rcpts += strings.Count(v, "@")
			}
		}
	}
	info, err := msginfo.Parse(bytes.NewReader(raw))
	if err != nil || info.Root == nil {
		f.text = strings.ToLower(string(raw))
		return f
	}
	f.info = info
	var text strings.Builder
	f.walk(info.Root, &text, 0)
	f.countShouting(text.String())
	f.text = strings.ToLower(text.String())
	if !f.hasGT {
		f.hasGT = strings.Contains(f.text, strings.ToLower(gtube)) || gtubeInParts(raw, info.Root, 0)
	}
	return f
}

// walk collects the text, links and part statistics of p and its children.
func (f *facts) walk(p *msginfo.Part, text *strings.Builder, depth int) {
	if depth > 20 {
		return
	}
	switch {
	case p.Message != nil:
		f.walk(p.Message.Root, text, depth+1)
		return
	case p.Multipart:
		for _, c := range p.Children {
			f.walk(c, text, depth+1)
		}
		return
	case strings.EqualFold(p.Type, "multipart"):
		f.parts.missingBoundary = true
	}
	if cs := strings.TrimSpace(p.Param("charset")); cs != "" && !knownCharset(cs) {
		f.parts.unknownCharset = true
	}
	if !p.IsText() || strings.EqualFold(p.Disposition, "attachment") {
		return
	}
	body := string(msginfo.PartText(f.raw, p))
	if strings.EqualFold(p.Encoding, "base64") {
		f.parts.base64Text++
	}
	if strings.EqualFold(p.Subtype, "html") {
		f.parts.html++
		h := scanHTML(body)
		f.links = append(f.links, h.links...)
		f.parts.images += h.images
		f.parts.htmlTextBytes += len(strings.TrimSpace(h.text))
		body = h.text
	} else {
		if strings.EqualFold(p.Subtype, "plain") {
			f.parts.plain++
		}
		f.links = append(f.links, plainLinks(body)...)
	}
	text.WriteString(body)
	text.WriteByte('\n')
}

// maxPhraseText bounds the text the phrase groups search: each phrase is a scan of it, and what a spammer wants
// read comes first.
const maxPhraseText = 128 << 10

// countPhrases counts the patterns of a phrase group found in the subject and text.
func (f *facts) countPhrases(group string) int {
	if f.hay == "" {
		text := f.text[:min(len(f.text), maxPhraseText)]
		f.hay = strings.Join(strings.Fields(strings.ToLower(f.subj)+"\n"+text), " ")
	}
	found := map[int]bool{}
	for _, ph := range f.phraseTab[group] {
		if !found[ph.pattern] && ph.found(f.hay) {
			found[ph.pattern] = true
		}
	}
	return len(found)
}

// countShouting counts the words of s, and those of 4 letters or more written in capitals.
func (f *facts) countShouting(s string) {
	for _, w := range strings.Fields(s) {
		f.words++
		letters, upper := 0, 0
		for _, r := range w {
			if unicode.IsLetter(r) {
				letters++
				if unicode.IsUpper(r) {
					upper++
				}
			}
		}
		if letters >= 4 && upper == letters {
			f.shouts++
		}
	}
}

// gtubeInParts looks for GTUBE in the decoded body of every leaf part (an attachment in base64 hides it from
// the raw bytes).
func gtubeInParts(raw []byte, p *msginfo.Part, depth int) bool {
	switch {
	case depth > 20:
		return false
	case p.Message != nil:
		return gtubeInParts(raw, p.Message.Root, depth+1)
	case p.Multipart:
		for _, c := range p.Children {
			if gtubeInParts(raw, c, depth+1) {
				return true
			}
		}
		return false
	}
	return bytes.Contains(msginfo.PartText(raw, p), []byte(gtube))
}

// knownCharset reports whether go-message can decode the charset (or it needs no decoding).
func knownCharset(cs string) bool {
	switch strings.ToLower(cs) {
	case "us-ascii", "ascii", "utf-8", "utf8":
		return true
	}
	_, err := charset.Reader(cs, strings.NewReader(""))
	return err == nil
}

// hostIsIP reports whether a URL host is an address literal: dotted IPv4, [IPv6], or the decimal and hex forms
// browsers accept (http://3232235777/) to hide one.
func hostIsIP(host string) bool {
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return true
	}
	if host == "" {
		return false
	}
	for _, c := range host {
		if (c < '0' || c > '9') && c != '.' && c != 'x' && (c < 'a' || c > 'f') {
			return false
		}
	}
	return strings.HasPrefix(host, "0x") || strings.Trim(host, "0123456789") == ""
}

// site returns the registered domain of host (example.co.uk for www.example.co.uk), or host itself.
func site(host string) string {
	if d, err := publicsuffix.EffectiveTLDPlusOne(strings.TrimSuffix(host, ".")); err == nil {
		return d
	}
	return host
}

// invalid8bit reports whether a raw header value has 8-bit bytes that are not UTF-8 (RFC 6532 allows UTF-8;
// anything else is neither that nor RFC 2047).
func invalid8bit(v string) bool {
	return !utf8.ValidString(v)
}
