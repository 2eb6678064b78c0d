// Package htmltext walks an HTML part the way the content checks need it: the text a reader sees and the tags
// with their attributes, in document order. The built-in rules (links and their anchor text, images) and the
// statistical filter (words, link hosts, tag names) both read HTML through it.
//
// It is golang.org/x/net/html's Tokenizer (HTML5 tokenization, WHATWG HTML 13.2.5), not a tree builder: spam
// HTML is rarely well-formed and the checks only need to see roughly what the reader sees. Comments, doctypes
// and the contents of script and style are not text; entities are decoded; a tag left open at the end of the
// input is dropped, as a browser drops it. The contents of noscript, noembed and noframes are read as HTML, not
// as raw text: a mail client runs no scripts and no plugins, so their fallback is what the reader sees.
//
// The cost is linear in the input, also for hostile input (thousands of unclosed script tags, a tag with
// thousands of attributes, no tag end): the Tokenizer reads each byte a bounded number of times.
package htmltext

import (
	"strings"

	"golang.org/x/net/html"
)

// Tag is a start, end or self-closing tag.
type Tag struct {
	Name string // lower case
	End  bool   // an end tag (</a>)
	// Attrs are the attributes of a start tag, keys lower-cased, values with entities decoded.
	Attrs []html.Attribute
}

// Attr returns the value of the first attribute key (lower case), or "".
func (t *Tag) Attr(key string) string {
	for _, a := range t.Attrs {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// Handler receives what Walk finds; a nil func is not called. The slice given to Text and the Tag (with its
// Attrs) are valid only during the call.
type Handler struct {
	Text func(text []byte)
	Tag  func(t *Tag)
}

// Walk tokenizes s and calls h for each run of visible text and each tag, in document order.
func Walk(s string, h Handler) {
	z := html.NewTokenizer(strings.NewReader(s))
	raw := false // the next text token is the contents of script or style
	var tag Tag
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken: // io.EOF: the input is exhausted (a reader of a string has no other error)
			return
		case html.TextToken:
			if !raw && h.Text != nil {
				h.Text(z.Text())
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, more := z.TagName()
			tag = Tag{Name: string(name), End: tt == html.EndTagToken, Attrs: tag.Attrs[:0]}
			for more && h.Tag != nil {
				var k, v []byte
				k, v, more = z.TagAttr()
				tag.Attrs = append(tag.Attrs, html.Attribute{Key: string(k), Val: string(v)})
			}
			raw = !tag.End && (tag.Name == "script" || tag.Name == "style")
			if !tag.End && (tag.Name == "noscript" || tag.Name == "noembed" || tag.Name == "noframes") {
				z.NextIsNotRawText()
			}
			if h.Tag != nil {
				h.Tag(&tag)
			}
		}
	}
}
