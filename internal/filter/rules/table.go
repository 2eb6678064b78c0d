package rules

import (
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/emersion/go-msgauth/authres"
)

// rule is one built-in test: when test holds, the message gets score under symbol (shown in X-Spam-Status).
type rule struct {
	symbol string
	score  float64
	desc   string
	test   func(f *facts) bool
}

// builtin is the rule table. Scores follow SpamAssassin's where a rule has a counterpart there, lowered where
// our version is broader; docs/filters-rules.md lists them with how they do on SpamAssassin's sample ham and spam.
func builtin() []rule {
	return []rule{
		{"GTUBE", 1000, "the GTUBE anti-spam test string", func(f *facts) bool { return f.hasGT }},

		// Header checks.
		{"MISSING_DATE", 1.0, "no Date header (RFC 5322 3.6 requires one)", func(f *facts) bool { return f.header.Get("Date") == "" }},
		{"INVALID_DATE", 1.0, "a Date header that does not parse", func(f *facts) bool {
			return f.header.Get("Date") != "" && f.date.IsZero()
		}},
		{"DATE_IN_FUTURE", 1.5, "Date more than 12 hours after reception", func(f *facts) bool {
			return !f.date.IsZero() && f.date.Sub(f.now) > 12*time.Hour
		}},
		{"DATE_IN_PAST", 0.5, "Date more than 4 days before reception", func(f *facts) bool {
			return !f.date.IsZero() && f.now.Sub(f.date) > 96*time.Hour
		}},
		{"MISSING_MID", 0.5, "no Message-ID header", func(f *facts) bool { return f.header.Get("Message-Id") == "" }},
		{"MISSING_FROM", 1.5, "no From header (RFC 5322 3.6 requires one)", func(f *facts) bool { return f.header.Get("From") == "" }},
		{"FROM_MALFORMED", 1.5, "a From header without a valid address", func(f *facts) bool {
			return f.header.Get("From") != "" && f.from == nil
		}},
		{"FROM_NAME_SPOOF", 2.0, "From's display name is an address of another domain", fromNameSpoof},
		{"MISSING_SUBJECT", 0.5, "no Subject header", func(f *facts) bool { return !f.header.Has("Subject") }},
		{"SUBJ_ALL_CAPS", 1.0, "the subject is all capitals", subjectAllCaps},
		{"SUBJ_EXCLAIM", 0.5, "the subject has !! or $$", func(f *facts) bool {
			return strings.Contains(f.subj, "!!") || strings.Contains(f.subj, "$$")
		}},
		{"HEADER_8BIT", 1.0, "8-bit bytes in Subject or From that are neither UTF-8 nor RFC 2047", func(f *facts) bool {
			return invalid8bit(f.header.Get("Subject")) || invalid8bit(f.header.Get("From"))
		}},
		{"MISSING_TO", 0.3, "neither To nor Cc", func(f *facts) bool { return !f.header.Has("To") && !f.header.Has("Cc") }},
		{"TO_CC_MANY", 1.0, "20 or more addresses in To and Cc", func(f *facts) bool { return f.rcpts >= 20 }},

		// MIME structure.
		{"MIME_HTML_ONLY", 0.7, "HTML without a text/plain alternative", func(f *facts) bool {
			return f.parts.html > 0 && f.parts.plain == 0
		}},
		{"HTML_IMAGE_ONLY", 1.0, "HTML with images and almost no text", func(f *facts) bool {
			return f.parts.images > 0 && f.parts.htmlTextBytes < 200 && f.parts.plain == 0
		}},
		{"MIME_BASE64_TEXT", 0.5, "a text part in base64", func(f *facts) bool { return f.parts.base64Text > 0 }},
		{"MIME_CHARSET_UNKNOWN", 1.0, "a charset no decoder knows", func(f *facts) bool { return f.parts.unknownCharset }},
		{"MIME_MISSING_BOUNDARY", 1.0, "a multipart without boundary", func(f *facts) bool { return f.parts.missingBoundary }},

		// Links.
		{"URI_IP_LITERAL", 2.0, "a link to an IP address instead of a name", func(f *facts) bool {
			return slices.ContainsFunc(f.links, func(l link) bool { return hostIsIP(l.host) })
		}},
		{"URI_SHORTENER", 1.0, "a link through a URL shortener", func(f *facts) bool {
			return slices.ContainsFunc(f.links, func(l link) bool { return shorteners[site(l.host)] || shorteners[l.host] })
		}},
		{"URI_USERINFO", 2.0, "a link with user@ before the host (http://bank.example@evil.example/)", func(f *facts) bool {
			return slices.ContainsFunc(f.links, func(l link) bool { return l.userinfo })
		}},
		{"URI_PHISH_PATH", 1.5, "a link to a sign-in page inside a WordPress directory (a hacked site hosting a phish)", func(f *facts) bool {
			return slices.ContainsFunc(f.links, func(l link) bool { return phishPath.MatchString(l.path) })
		}},
		{"HTML_LINK_MISMATCH", 1.5, "a link whose text shows another site than it goes to", linkMismatch},

		{"BODY_SHOUTING", 1.0, "ten or more words in capitals, a tenth of the text or more", func(f *facts) bool {
			return f.shouts >= 10 && f.shouts*10 >= f.words
		}},

		// Phrases: each group fires once, however many of its phrases the text has.
		{"PHRASE_PHARMA", 2.0, "pharmacy spam words", phraseRule("pharma", 1)},
		{"PHRASE_ADVANCE_FEE", 2.0, "advance-fee fraud (419) phrases", phraseRule("419", 2)},
		{"PHRASE_LOTTERY", 1.5, "lottery and prize phrases", phraseRule("lottery", 1)},
		{"PHRASE_ACCOUNT_PHISH", 1.5, "account verification phrases", phraseRule("phish", 1)},
		{"PHRASE_NOT_SPAM", 2.0, "claims not to be spam", phraseRule("notspam", 1)},
		{"PHRASE_MARKETING", 1.0, "two or more pushy marketing phrases", phraseRule("marketing", 2)},
		{"PHRASE_MARKETING_MANY", 1.5, "four or more pushy marketing phrases", phraseRule("marketing", 4)},
		{"PHRASE_MONEY", 1.0, "make-money and loan offers", phraseRule("money", 1)},
		{"PHRASE_REMOVE", 1.0, "opt-out instructions typical of bulk mail", phraseRule("remove", 1)},

		// Authentication results, when the check that produced them has not scored them itself.
		{"AUTH_SPF_FAIL", 3.0, "SPF fail (RFC 7208 2.6.4), not scored by the spf check", authRule("SPF_", spfIs(authres.ResultFail))},
		{"AUTH_SPF_SOFTFAIL", 1.0, "SPF softfail (RFC 7208 2.6.5), not scored by the spf check", authRule("SPF_", spfIs(authres.ResultSoftFail))},
		{"AUTH_DKIM_INVALID", 0.5, "DKIM signatures that all fail, none passes, not scored by the dkim check", authRule("DKIM_", dkimInvalid)},
		{"AUTH_DMARC_FAIL", 3.0, "DMARC fail (RFC 7489), not scored by the dmarc check", authRule("DMARC_", dmarcFail)},
	}
}

// shorteners are URL shortening services: they hide where a link goes.
var shorteners = setOf("bit.ly", "bitly.com", "tinyurl.com", "goo.gl", "t.co", "ow.ly", "is.gd", "buff.ly", "rebrand.ly",
	"cutt.ly", "shorturl.at", "tiny.cc", "rb.gy", "bl.ink", "t.ly", "v.gd", "s.id", "shorte.st", "adf.ly", "bc.vc",
	"x.co", "lnkd.in", "db.tt", "qr.ae", "cur.lv", "po.st", "u.to", "j.mp", "tr.im", "snip.ly", "clck.ru", "tiny.pl",
	"page.link", "urlz.fr", "2no.co", "shorturl.me", "tinu.be")

func setOf(s ...string) map[string]bool {
	m := make(map[string]bool, len(s))
	for _, v := range s {
		m[v] = true
	}
	return m
}

// phishPath matches the path of a phishing page planted in a compromised WordPress site.
var phishPath = regexp.MustCompile(`^/wp-(?:admin|content|includes)/.*(?:sign-?in|log-?in|auth|verify|account|office365|webmail)`)

// phraseGroups are the phrase groups over the lower-cased subject and text, whitespace runs folded to one space.
// A phrase is literal text; {a|b} spells alternatives and \b at either end asks for a word boundary there.
// Literal matching (not regular expressions) keeps a 512 KiB message cheap.
func phraseGroups() map[string][]phrase {
	return compilePhrases(map[string][]string{
		"pharma": {`\bviagra\b`, `\bcialis\b`, `\blevitra\b`, `\bphentermine\b`, `\bxanax\b`, `\bvalium\b`,
			`online pharmacy`, `\bvicodin\b`, `\bmedz\b`, `no {dr|doctor}{-| |}script`, `no prescription`,
			`quality drugs`, `fda{-| }approved`, `generic {viagra|cialis|drugs}`},
		"419": {`million {united states |us |u.s. |}dollars`, `next of kin`, `\bbeneficiary\b`, `\bbarrister\b`,
			`strictly confidential`, `transfer {of |}{the |this |}fund`, `foreign {partner|account}`, `\bdeceased\b`,
			`central bank`, `my late {husband|father}`},
		"lottery": {`you have won`, `winning notification`, `\blottery\b`, `claim your {prize|winnings}`,
			`you{'ve| have} been selected`},
		"phish": {`verify your {account|identity|password}`, `account {has been |will be |}{suspended|locked|limited}`,
			`confirm your {account|identity|password|billing}`, `update your {billing|payment|account} {information|details}`,
			`unusual {sign-in|login} activity`, `your password {expires|will expire}`},
		"notspam": {`this {e-mail |email |message |}is not {spam|unsolicited}`, `bill s{. |.| }1618`, `section 301`,
			`\bnot {a |}spam\b`, `sent in compliance`},
		"marketing": {`click here`, `act now`, `limited time`, `order now`, `100% free`, `risk{-| }free`,
			`money{-| }back guarantee`, `no obligation`, `special promotion`, `satisfaction guaranteed`, `why pay more`,
			`call now`, `buy now`, `{don't|dont} delete`, `free {gift|trial|offer|access}`, `once in a lifetime`,
			`lowest price`, `amazing`, `\bguaranteed\b`, `100% satisf`, `you will not believe`, `$$$`},
		"money": {`work from home`, `make money`, `extra {income|cash}`, `financial freedom`, `be your own boss`,
			`earn ${0|1|2|3|4|5|6|7|8|9}`, `{lower|reduce} your {mortgage|payment|debt}`, `debt consolidation`,
			`credit repair`, `pre{-|}approved`, `refinanc`, `cash bonus`, `home{-| }based business`, `\bmlm\b`},
		"remove": {`to be removed`, `remove me`, `removal instructions`, `to opt{-| }out`, `remove in the subject`,
			`you {are receiving|received} this {e-mail|email|message} because`},
	})
}

// phrase is one literal of a phrase group.
type phrase struct {
	text               string
	wordStart, wordEnd bool // a word boundary is needed before / after it
	pattern            int  // which pattern of the group it was spelled from
}

func compilePhrases(groups map[string][]string) map[string][]phrase {
	out := make(map[string][]phrase, len(groups))
	for name, pats := range groups {
		for k, p := range pats {
			for _, lit := range expand(p) {
				ph := phrase{text: lit, pattern: k}
				if t, ok := strings.CutPrefix(ph.text, `\b`); ok {
					ph.text, ph.wordStart = t, true
				}
				if t, ok := strings.CutSuffix(ph.text, `\b`); ok {
					ph.text, ph.wordEnd = t, true
				}
				out[name] = append(out[name], ph)
			}
		}
	}
	return out
}

// expand spells out the first {a|b|...} of p, recursively: "x {a|b}" is "x a" and "x b".
func expand(p string) []string {
	i := strings.IndexByte(p, '{')
	j := strings.IndexByte(p, '}')
	if i < 0 || j < i {
		return []string{p}
	}
	var out []string
	for _, alt := range strings.Split(p[i+1:j], "|") {
		out = append(out, expand(p[:i]+alt+p[j+1:])...)
	}
	return out
}

// found reports whether ph occurs in hay with the word boundaries it asks for.
func (ph phrase) found(hay string) bool {
	for off := 0; ; {
		i := strings.Index(hay[off:], ph.text)
		if i < 0 {
			return false
		}
		i += off
		end := i + len(ph.text)
		if (!ph.wordStart || i == 0 || !isWordByte(hay[i-1])) && (!ph.wordEnd || end == len(hay) || !isWordByte(hay[end])) {
			return true
		}
		off = i + 1
	}
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c >= 0x80
}

// phraseRule holds when phrases of at least n different patterns of group were found (alternatives of one
// pattern count once).
func phraseRule(group string, n int) func(f *facts) bool {
	return func(f *facts) bool {
		count, ok := f.phraseHits[group]
		if !ok {
			count = f.countPhrases(group)
			f.phraseHits[group] = count
		}
		return count >= n
	}
}

// fromNameSpoof: From: "paypal@paypal.com" <x@evil.example> — the name shows an address of another site.
func fromNameSpoof(f *facts) bool {
	if f.from == nil || !strings.Contains(f.from.Name, "@") {
		return false
	}
	real := site(strings.ToLower(f.from.Address[strings.LastIndexByte(f.from.Address, '@')+1:]))
	for _, w := range strings.FieldsFunc(f.from.Name, func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune(`"'<>()[],;`, r) }) {
		at := strings.LastIndexByte(w, '@')
		if at <= 0 || at == len(w)-1 || !strings.Contains(w[at+1:], ".") {
			continue
		}
		if site(strings.ToLower(strings.TrimRight(w[at+1:], "."))) != real {
			return true
		}
	}
	return false
}

// subjectAllCaps: a subject of at least 10 letters and two words with no lower-case letter.
func subjectAllCaps(f *facts) bool {
	letters, upper := 0, 0
	for _, r := range f.subj {
		if unicode.IsLetter(r) {
			letters++
			if unicode.IsUpper(r) {
				upper++
			} else if unicode.IsLower(r) {
				return false
			}
		}
	}
	return letters >= 10 && upper == letters && len(strings.Fields(f.subj)) >= 2
}

// linkMismatch: <a href="http://evil.example/">www.bank.example</a> — the text is a host name of another site.
func linkMismatch(f *facts) bool {
	for _, l := range f.links {
		if l.text == "" {
			continue
		}
		shown := l.text
		if sl, ok := parseLink(shown); ok {
			shown = sl.host
		} else if strings.ContainsAny(shown, " \t\n/@") || !strings.Contains(shown, ".") || !strings.HasPrefix(shown, "www.") {
			continue // only text that plainly is a host name counts
		}
		if shown != "" && site(shown) != site(l.host) {
			return true
		}
	}
	return false
}

// authRule holds when test holds on the transaction's results and no symbol with prefix was scored (the check
// that produced the result scores it by its own policy; the rules must not count it twice).
func authRule(prefix string, test func([]authres.Result) bool) func(f *facts) bool {
	return func(f *facts) bool {
		if f.txn == nil || len(f.txn.Results) == 0 {
			return false
		}
		for _, s := range f.txn.Symbols {
			if strings.HasPrefix(s, prefix) {
				return false
			}
		}
		return test(f.txn.Results)
	}
}

func spfIs(v authres.ResultValue) func([]authres.Result) bool {
	return func(rs []authres.Result) bool {
		for _, r := range rs {
			if s, ok := r.(*authres.SPFResult); ok && s.Value == v {
				return true
			}
		}
		return false
	}
}

func dkimInvalid(rs []authres.Result) bool {
	failed := false
	for _, r := range rs {
		if d, ok := r.(*authres.DKIMResult); ok {
			switch d.Value {
			case authres.ResultPass:
				return false
			case authres.ResultFail, authres.ResultPermError:
				failed = true
			}
		}
	}
	return failed
}

func dmarcFail(rs []authres.Result) bool {
	for _, r := range rs {
		if d, ok := r.(*authres.DMARCResult); ok && d.Value == authres.ResultFail {
			return true
		}
	}
	return false
}
