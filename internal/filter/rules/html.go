package rules

import (
	"strings"
)

// htmlScan is what the rules need of an HTML part: its visible text, its links with their anchor text, and how
// many images it shows. It is a forgiving scanner, not a parser: spam HTML is rarely well-formed, and a rule
// only needs to see roughly what the reader sees.
type htmlScan struct {
	text   string
	links  []link
	images int
}

var htmlEntities = strings.NewReplacer("&nbsp;", " ", "&amp;", "&", "&lt;", "<", "&gt;", ">", "&quot;", `"`, "&#39;", "'")

// scanHTML strips tags, comments, scripts and styles from s.
func scanHTML(s string) htmlScan {
	var h htmlScan
	var text strings.Builder
	anchor := -1 // index in h.links of the open <a>, its text starts at anchorStart
	anchorStart := 0
	for s != "" {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			text.WriteString(s)
			break
		}
		text.WriteString(s[:i])
		s = s[i:]
		if strings.HasPrefix(s, "<!--") {
			end := strings.Index(s, "-->")
			if end < 0 {
				break
			}
			s = s[end+3:]
			continue
		}
		end := strings.IndexByte(s, '>')
		if end < 0 {
			break
		}
		tag := s[1:end]
		s = s[end+1:]
		name := ""
		if f := strings.Fields(tag); len(f) > 0 {
			name = strings.ToLower(f[0])
		}
		switch name {
		case "a":
			if href := attr(tag, "href"); href != "" {
				if l, ok := parseLink(href); ok {
					h.links = append(h.links, l)
					anchor, anchorStart = len(h.links)-1, text.Len()
				}
			}
		case "/a":
			if anchor >= 0 {
				h.links[anchor].text = strings.ToLower(strings.TrimSpace(htmlEntities.Replace(text.String()[anchorStart:])))
				anchor = -1
			}
		case "img":
			h.images++
		case "script", "style":
			k := closeTag(s, name)
			if k < 0 {
				s = "" // unclosed: the rest is script
				continue
			}
			s = s[k:]
		case "br", "p", "/p", "div", "/div", "tr", "/tr", "td", "li":
			text.WriteByte('\n')
		}
	}
	h.text = htmlEntities.Replace(text.String())
	return h
}

// closeTag returns the index in s of the tag closing an element name ("</script"), matched without regard to
// case, or -1. It allocates nothing and scans s once.
func closeTag(s, name string) int {
	for off := 0; ; {
		i := strings.Index(s[off:], "</")
		if i < 0 {
			return -1
		}
		i += off
		if end := i + 2 + len(name); end <= len(s) && strings.EqualFold(s[i+2:end], name) {
			return i
		}
		off = i + 2
	}
}

// attr returns the value of attribute name in a tag's inside ("a href=\"x\" ..."), or "".
func attr(tag, name string) string {
	lower := strings.ToLower(tag)
	for off := 0; ; {
		i := strings.Index(lower[off:], name)
		if i < 0 {
			return ""
		}
		i += off
		off = i + len(name)
		if i > 0 && !strings.ContainsRune(" \t\r\n\"'", rune(lower[i-1])) {
			continue
		}
		rest := strings.TrimLeft(tag[off:], " \t\r\n")
		if !strings.HasPrefix(rest, "=") {
			continue
		}
		rest = strings.TrimLeft(rest[1:], " \t\r\n")
		if rest != "" && (rest[0] == '"' || rest[0] == '\'') {
			if j := strings.IndexByte(rest[1:], rest[0]); j >= 0 {
				return rest[1 : j+1]
			}
			return rest[1:]
		}
		if j := strings.IndexAny(rest, " \t\r\n"); j >= 0 {
			return rest[:j]
		}
		return rest
	}
}

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
