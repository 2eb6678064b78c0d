package bayes

import (
	"bufio"
	"bytes"
	"hash/fnv"
	"mime"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"

	"github.com/postern/postern/internal/filter/htmltext"
	"github.com/postern/postern/internal/mail/msginfo"
)

// Tokenizer limits. A message gives at most maxTokens distinct tokens; words are 3 to maxWord runes long, longer
// ones become one "long:" token that keeps their first letter and length bucket (as SpamBayes' "skip:"), so a
// base64 blob or a hash does not flood the table with tokens seen once.
const (
	maxTokens = 5000
	minWord   = 3
	maxWord   = 20
)

// Tokenize returns the distinct tokens of a message, in first-seen order: words of the decoded subject and text
// parts (HTML without its tags, CJK text as character bigrams), the host names of links, the sender's address
// and domain, the mailer, the MIME types, charsets and attachment extensions. Header tokens carry a prefix
// ("subject:", "from:", ...) so a word counts apart in the subject and in the body. It never fails: a message
// that is not MIME at all gives the words of its bytes.
func Tokenize(msg []byte) []string {
	t := &tokens{seen: map[string]bool{}}
	hdr, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(msg)))
	if err == nil {
		t.header(hdr)
	}
	info, err := msginfo.Parse(bytes.NewReader(msg))
	if err != nil || info.Root == nil {
		t.words("", string(msg))
		return t.list
	}
	t.part(msg, info.Root, 0)
	return t.list
}

// tokens collects distinct tokens in order.
type tokens struct {
	seen map[string]bool
	list []string
}

func (t *tokens) add(tok string) {
	if len(t.list) >= maxTokens || t.seen[tok] {
		return
	}
	t.seen[tok] = true
	t.list = append(t.list, tok)
}

// wordDecoder decodes RFC 2047 encoded-words with go-message's charset tables.
var wordDecoder = mime.WordDecoder{CharsetReader: charset.Reader}

func decodeHeader(v string) string {
	if d, err := wordDecoder.DecodeHeader(v); err == nil {
		return d
	}
	return v
}

// header adds the tokens of the top-level header fields that tell senders and campaigns apart.
func (t *tokens) header(h textproto.Header) {
	t.words("subject:", decodeHeader(h.Get("Subject")))
	if from := h.Get("From"); from != "" {
		addr := strings.ToLower(addrSpec(from))
		t.add("from:" + addr)
		if at := strings.LastIndexByte(addr, '@'); at >= 0 {
			t.add("fromdom:" + addr[at+1:])
		}
		name := strings.TrimSpace(strings.Trim(strings.TrimSpace(strings.Split(decodeHeader(from), "<")[0]), `"`))
		t.words("fromname:", name)
	}
	if mid := h.Get("Message-Id"); mid != "" {
		if at := strings.LastIndexByte(mid, '@'); at >= 0 {
			t.add("mid:" + strings.ToLower(strings.Trim(mid[at+1:], "<> \t")))
		}
	}
	for _, k := range []string{"X-Mailer", "User-Agent"} {
		if v := h.Get(k); v != "" {
			f := strings.Fields(strings.ToLower(v))
			t.add("mailer:" + strings.Join(f[:min(len(f), 2)], " "))
		}
	}
	if h.Get("Date") == "" {
		t.add("header:no-date")
	}
	if h.Get("Message-Id") == "" {
		t.add("header:no-message-id")
	}
}

// addrSpec returns the address inside <...>, or the whole value trimmed.
func addrSpec(v string) string {
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return strings.TrimSpace(v[i+1 : i+j])
		}
	}
	return strings.TrimSpace(v)
}

// part adds the tokens of one MIME part and its children.
func (t *tokens) part(msg []byte, p *msginfo.Part, depth int) {
	if depth > 20 {
		return
	}
	ctype := strings.ToLower(p.Type + "/" + p.Subtype)
	t.add("ctype:" + ctype)
	if cs := strings.ToLower(p.Param("charset")); cs != "" {
		t.add("charset:" + cs)
	}
	if enc := strings.ToLower(p.Encoding); enc != "" && p.IsText() {
		t.add("cte:" + enc + ":" + ctype)
	}
	if name := attachmentName(p); name != "" {
		if ext := strings.ToLower(path.Ext(name)); ext != "" && len(ext) <= 8 {
			t.add("ext:" + ext)
		}
	}
	switch {
	case p.Message != nil:
		t.part(msg, p.Message.Root, depth+1)
	case p.Multipart:
		for _, c := range p.Children {
			t.part(msg, c, depth+1)
		}
	case p.IsText() && !strings.EqualFold(p.Disposition, "attachment"):
		text := string(msginfo.PartText(msg, p))
		if strings.EqualFold(p.Subtype, "html") {
			text = t.html(text)
		} else {
			t.urls(text)
		}
		t.words("", text)
	}
}

// attachmentName is a part's file name: Content-Disposition's filename, else Content-Type's name.
func attachmentName(p *msginfo.Part) string {
	for _, kv := range p.DispParams {
		if strings.EqualFold(kv[0], "filename") {
			return decodeHeader(kv[1])
		}
	}
	return decodeHeader(p.Param("name"))
}

// html returns the text of an HTML part without tags, comments, scripts and styles (internal/filter/htmltext),
// adding the hosts of the links in its attributes as tokens, and an "html:" token per distinct tag name.
func (t *tokens) html(s string) string {
	var b strings.Builder
	htmltext.Walk(s, htmltext.Handler{
		Text: func(text []byte) {
			b.Write(text)
			b.WriteByte(' ')
		},
		Tag: func(tag *htmltext.Tag) {
			if len(tag.Name) <= 10 {
				t.add("html:" + tag.Name)
			}
			for _, a := range tag.Attrs {
				t.urls(a.Val)
			}
			b.WriteByte(' ')
		},
	})
	return b.String()
}

// urls adds a "url:" token for the host of each http(s) link in s, and one for its registered-domain guess
// (the last two labels).
func (t *tokens) urls(s string) {
	for {
		i := indexFold(s, "http")
		if i < 0 {
			return
		}
		s = s[i+4:]
		if len(s) > 0 && (s[0] == 's' || s[0] == 'S') {
			s = s[1:]
		}
		if !strings.HasPrefix(s, "://") {
			continue
		}
		s = s[3:]
		w := s[:min(len(s), 256)] // a host name is short; never scan the rest of a long text per link
		end := strings.IndexAny(w, "/?#\"'> \t\r\n)")
		if end < 0 {
			end = len(w)
		}
		host := strings.ToLower(s[:end])
		if at := strings.LastIndexByte(host, '@'); at >= 0 {
			t.add("url:userinfo")
			host = host[at+1:]
		}
		host, _, _ = strings.Cut(host, ":")
		if host == "" || len(host) > 100 {
			continue
		}
		t.add("url:" + host)
		if labels := strings.Split(host, "."); len(labels) > 2 {
			t.add("url:" + strings.Join(labels[len(labels)-2:], "."))
		}
	}
}

func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// words adds the words of s with prefix: lower-cased, surrounding punctuation trimmed (but "$" and "!" kept,
// they carry signal), CJK runs as bigrams.
func (t *tokens) words(prefix, s string) {
	for _, f := range strings.FieldsFunc(s, isSeparator) {
		if hasCJK(f) {
			t.bigrams(prefix, f)
			continue
		}
		w := strings.ToLower(strings.TrimFunc(f, func(r rune) bool {
			return r != '$' && r != '!' && (unicode.IsPunct(r) || unicode.IsSymbol(r))
		}))
		n := utf8.RuneCountInString(w)
		switch {
		case n < minWord:
		case n > maxWord:
			r, _ := utf8.DecodeRuneInString(w)
			t.add(prefix + "long:" + string(r) + ":" + string(rune('0'+min(n/10, 9))))
		default:
			t.add(prefix + w)
		}
		if len(t.list) >= maxTokens {
			return
		}
	}
}

func isSeparator(r rune) bool {
	return unicode.IsSpace(r) || r == ',' || r == ';' || r == '(' || r == ')' || r == '"' || r == '<' || r == '>' ||
		r == '[' || r == ']' || r == '{' || r == '}' || r == '|' || r == '=' || r == '*' || r == '\u3001' || r == '\u3002'
}

func isCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

func hasCJK(s string) bool {
	for _, r := range s {
		if isCJK(r) {
			return true
		}
	}
	return false
}

// bigrams adds each pair of adjacent CJK characters of s (text without spaces between words).
func (t *tokens) bigrams(prefix, s string) {
	var prev rune
	for _, r := range s {
		if !isCJK(r) {
			prev = 0
			continue
		}
		if prev != 0 {
			t.add(prefix + string(prev) + string(r))
		}
		prev = r
	}
}

// hashToken is the 64-bit FNV-1a hash under which a token is stored: the store never sees the words of a
// user's mail, and every token costs the same.
func hashToken(tok string) int64 {
	h := fnv.New64a()
	h.Write([]byte(tok))
	return int64(h.Sum64())
}
