package rules

import (
	"strings"

	"github.com/postern/postern/internal/filter/htmltext"
)

// htmlScan is what the rules need of an HTML part: its visible text, its links with their anchor text, and how
// many images it shows. It is a forgiving scanner, not a parser: spam HTML is rarely well-formed, and a rule
// only needs to see roughly what the reader sees.
type htmlScan struct {
	text   string
	links  []link
	images int
}

// scanHTML reads the text, links and images of an HTML part (internal/filter/htmltext: comments, scripts and
// styles are not text, entities are decoded).
func scanHTML(s string) htmlScan {
	var h htmlScan
	var text strings.Builder
	anchor := -1 // index in h.links of the open <a>, its text starts at anchorStart
	anchorStart := 0
	htmltext.Walk(s, htmltext.Handler{
		Text: func(b []byte) { text.Write(b) },
		Tag: func(t *htmltext.Tag) {
			switch {
			case t.Name == "a" && !t.End:
				if l, ok := parseLink(t.Attr("href")); ok {
					h.links = append(h.links, l)
					anchor, anchorStart = len(h.links)-1, text.Len()
				}
			case t.Name == "a":
				if anchor >= 0 {
					h.links[anchor].text = strings.ToLower(strings.TrimSpace(text.String()[anchorStart:]))
					anchor = -1
				}
			case t.Name == "img" && !t.End:
				h.images++
			case blockTags[t.Name]:
				text.WriteByte('\n')
			}
		},
	})
	h.text = text.String()
	return h
}

// blockTags are the elements that start a new line of text, so words either side of them stay apart.
var blockTags = map[string]bool{"br": true, "p": true, "div": true, "tr": true, "td": true, "li": true}

// maxURL bounds what parseLink reads of one URL.
const maxURL = 2048

// parseLink takes an http(s) URL apart; ok is false for other schemes.
func parseLink(u string) (link, bool) {
	u = strings.TrimSpace(u[:min(len(u), maxURL)]) // u may be the rest of a long text: look at one URL's worth
	lower := strings.ToLower(u[:min(len(u), 8)])   // the scheme only: u may be the rest of a long text
	switch {
	case strings.HasPrefix(lower, "http://"):
		u = u[7:]
	case strings.HasPrefix(lower, "https://"):
		u = u[8:]
	default:
		return link{}, false
	}
	end := strings.IndexAny(u, "/?#\\ \t\r\n\"'<>")
	if end < 0 {
		end = len(u)
	}
	authority := strings.ToLower(u[:end])
	var l link
	if rest := u[end:]; strings.HasPrefix(rest, "/") {
		stop := strings.IndexAny(rest, " \t\r\n\"'<>")
		if stop < 0 {
			stop = len(rest)
		}
		l.path = strings.ToLower(rest[:min(stop, 300)])
	}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		l.userinfo = true
		authority = authority[at+1:]
	}
	if strings.HasPrefix(authority, "[") {
		if j := strings.IndexByte(authority, ']'); j > 0 {
			authority = authority[:j+1]
		}
	} else if host, _, ok := strings.Cut(authority, ":"); ok {
		authority = host
	}
	l.host = strings.TrimSuffix(authority, ".")
	return l, l.host != ""
}

// plainLinks finds the http(s) URLs of plain text.
func plainLinks(s string) []link {
	var out []link
	lower := strings.ToLower(s)
	for off := 0; len(out) < 1000; {
		i := strings.Index(lower[off:], "http")
		if i < 0 {
			break
		}
		i += off
		off = i + 4
		if l, ok := parseLink(s[i:]); ok {
			out = append(out, l)
		}
	}
	return out
}
