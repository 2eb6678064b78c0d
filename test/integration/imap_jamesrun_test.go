//go:build integration

package integration

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// jSession is one connection of a script. Lines are read the way James' ExternalSession reads them: split at LF,
// the CR before the LF dropped, so literal contents come as lines of their own. A CR inside a line stays: partial
// fetches that end between CR and LF are matched by regexes with "\r" (BodyPartialFetch, TextPartialFetch).
type jSession struct {
	c    net.Conn
	br   *bufio.Reader
	back []string // lines given back by a lookahead
	// greeting is the server's first line.
	greeting string
	log      []string // the last lines exchanged, for failure reports
}

func (js *jSession) note(dir, l string) {
	js.log = append(js.log, dir+" "+l)
	if len(js.log) > 40 {
		js.log = js.log[len(js.log)-40:]
	}
}

func (js *jSession) read(timeout time.Duration) (string, error) {
	if n := len(js.back); n > 0 {
		l := js.back[n-1]
		js.back = js.back[:n-1]
		return l, nil
	}
	_ = js.c.SetReadDeadline(time.Now().Add(timeout))
	l, err := js.br.ReadString('\n')
	if err != nil {
		if l != "" {
			js.note("S:", l+" <"+err.Error()+">")
		}
		return "", err
	}
	l = strings.TrimSuffix(strings.TrimSuffix(l, "\n"), "\r")
	js.note("S:", l)
	return l, nil
}

func (js *jSession) unread(l string) { js.back = append(js.back, l) }

// jamesRun replays one script.
type jamesRun struct {
	t        testing.TB // a *testing.T, or a knownFailure recorder for the scripts in jamesKnownFailures
	s        *server
	env      *jamesEnv
	name     string
	sessions []*jSession
	lastCmd  string // the last client line sent, on any session
}

func (r *jamesRun) close() {
	for _, js := range r.sessions {
		if js != nil {
			js.c.Close()
		}
	}
}

func (r *jamesRun) connect() *jSession {
	r.t.Helper()
	c, err := net.DialTimeout("tcp", r.s.addr(r.s.ports.IMAP), 5*time.Second)
	if err != nil {
		r.t.Fatal(err)
	}
	js := &jSession{c: c, br: bufio.NewReader(c)}
	l, err := js.read(10 * time.Second)
	if err != nil || !strings.HasPrefix(l, "* OK") {
		r.t.Fatalf("greeting: %q, %v; want * OK", l, err)
	}
	js.greeting = l
	return js
}

func (r *jamesRun) run(elems []jElem, maxSession int, setup, cleanup []jElem) {
	r.t.Helper()
	r.sessions = make([]*jSession, maxSession+1)
	for i := range r.sessions {
		r.sessions[i] = r.connect()
	}
	if !jamesNoLogin[r.name] {
		r.exec([]jElem{
			{kind: jClient, session: -1, text: "a001 LOGIN " + r.env.user + " password", loc: "fixture login"},
			{kind: jServer, session: -1, text: "a001 OK .*", loc: "fixture login", lastCmd: "a001 LOGIN"},
		})
	}
	for i, mb := range jamesFixtureMailboxes[r.name] {
		tag := fmt.Sprintf("fx%d", i)
		r.exec([]jElem{
			{kind: jClient, session: 0, text: tag + " CREATE " + mb, loc: "fixture mailbox"},
			{kind: jServer, session: 0, text: tag + " OK .*", loc: "fixture mailbox", lastCmd: "CREATE " + mb},
		})
	}
	if jamesSelected[r.name] {
		r.exec(rewriteScript(setup, r.env))
	}
	elems = rewriteScript(elems, r.env)
	if len(elems) > 0 && elems[0].kind == jServer && strings.HasPrefix(elems[0].text, `\* OK`) {
		// The script starts with the greeting (Welcome), which connect has read: check it against the script.
		if !r.matches(elems[0].text, r.sessions[0].greeting) {
			r.fail(elems[0], r.sessions[0], elems[0].text, r.sessions[0].greeting)
		}
		elems = elems[1:]
	}
	r.exec(elems)
	if jamesSelected[r.name] {
		r.exec(rewriteScript(cleanup, r.env))
	}
}

func (r *jamesRun) targets(session int) []*jSession {
	if session < 0 {
		return r.sessions
	}
	if session >= len(r.sessions) {
		r.t.Fatalf("session %d out of range", session)
	}
	return []*jSession{r.sessions[session]}
}

func (r *jamesRun) exec(elems []jElem) {
	r.t.Helper()
	for _, e := range elems {
		for _, js := range r.targets(e.session) {
			r.step(e, js)
		}
	}
}

func (r *jamesRun) step(e jElem, js *jSession) {
	r.t.Helper()
	switch e.kind {
	case jClient:
		r.lastCmd = e.text
		js.note("C:", e.text)
		_ = js.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := js.c.Write([]byte(e.text + "\r\n")); err != nil {
			r.fail(e, js, "", fmt.Sprintf("<write: %v>", err))
		}
	case jCont:
		l := r.next(e, js)
		if !strings.HasPrefix(l, "+") {
			r.fail(e, js, `\+ .*`, l)
		}
	case jReinit:
		js.c.Close()
		*js = *r.connect()
	case jServer:
		r.expectLine(e, js)
	case jSub:
		r.expectSet(e, js)
	}
}

func (r *jamesRun) next(e jElem, js *jSession) string {
	r.t.Helper()
	l, err := js.read(15 * time.Second)
	if err != nil {
		want := e.text
		if e.kind == jSub {
			want = strings.Join(e.lines, " | ")
		}
		r.fail(e, js, want, fmt.Sprintf("<read: %v>", err))
	}
	return l
}

func (r *jamesRun) expectLine(e jElem, js *jSession) {
	r.t.Helper()
	if until, ok := strings.CutPrefix(e.text, skipUntil); ok {
		for !r.matches(until, r.next(e, js)) {
		}
		return
	}
	for {
		l := r.next(e, js)
		switch {
		case r.matches(e.text, l):
			return
		case r.ignorable(l):
			continue
		case r.optional(e.text):
			js.unread(l)
			return
		}
		r.fail(e, js, e.text, l)
	}
}

// expectSet matches lines in any order: each expected regex by exactly one line.
func (r *jamesRun) expectSet(e jElem, js *jSession) {
	r.t.Helper()
	remaining := append([]string(nil), e.lines...)
	required := func() int {
		n := 0
		for _, x := range remaining {
			if !r.optional(x) {
				n++
			}
		}
		return n
	}
	for required() > 0 {
		l := r.next(e, js)
		i := slicesIndexFunc(remaining, func(x string) bool { return !r.optional(x) && r.matches(x, l) })
		if i < 0 {
			i = slicesIndexFunc(remaining, func(x string) bool { return r.matches(x, l) })
		}
		switch {
		case i >= 0:
			remaining = append(remaining[:i], remaining[i+1:]...)
		case r.ignorable(l):
		default:
			r.fail(e, js, "one of: "+strings.Join(remaining, "  |  "), l)
		}
	}
}

func slicesIndexFunc(s []string, f func(string) bool) int {
	for i, x := range s {
		if f(x) {
			return i
		}
	}
	return -1
}

var mailboxIDLine = regexp.MustCompile(`^\\\* OK \\\[MAILBOXID`)

// optional: expected lines of an extension Postern does not offer (OBJECTID's MAILBOXID, RFC 8474).
func (r *jamesRun) optional(re string) bool {
	return !r.env.objectID && mailboxIDLine.MatchString(re)
}

// ignorable: lines RFC 9051 lets a server send unasked, and data about Postern's default mailboxes (RFC 6154
// special-use, issue #3) that James' fixture user does not have.
func (r *jamesRun) ignorable(l string) bool {
	if _, name, ok := mailboxLine(l); ok {
		switch name {
		case "Sent", "Drafts", "Trash", "Junk":
			return !r.env.defaultsIn[name]
		}
	}
	// RFC 6851 4.3: MOVE may report COPYUID in an untagged OK before its EXPUNGEs. RFC 3501 7.3.2: RECENT may
	// come whenever the mailbox size changes (Postern reports it after expunges; James only after EXPUNGE).
	return strings.HasPrefix(l, "* CAPABILITY ") || strings.HasPrefix(l, "* OK [COPYUID ") || strings.HasPrefix(l, "* OK [CLOSED]") ||
		(!r.env.objectID && strings.HasPrefix(l, "* OK [MAILBOXID ")) || recentLine.MatchString(l)
}

var recentLine = regexp.MustCompile(`^\* \d+ RECENT$`)

var (
	reCache sync.Map
	// negLookahead is the one Java construct the scripts use that RE2 lacks: ^((?!X).)*$, "does not contain X".
	negLookahead = regexp.MustCompile(`^\^\(\(\?!([^()]+)\)\.\)\*\$$`)
	// spaceBrace: a literal announced in a FETCH line, " {666}", which Java would read as 666 spaces.
	spaceBrace = regexp.MustCompile(` \{(\d+)\}`)
)

// lineMatcher is a compiled James regex.
type lineMatcher interface{ MatchString(string) bool }

type notContains string

func (n notContains) MatchString(s string) bool { return !strings.Contains(s, string(n)) }

func compiled(re string) (lineMatcher, error) {
	if v, ok := reCache.Load(re); ok {
		return v.(lineMatcher), nil
	}
	var m lineMatcher
	if sub := negLookahead.FindStringSubmatch(re); sub != nil {
		m = notContains(sub[1])
	} else {
		rx, err := regexp.Compile(`^(?:` + spaceBrace.ReplaceAllString(re, ` \{$1\}`) + `)$`)
		if err != nil {
			return nil, err
		}
		m = rx
	}
	reCache.Store(re, m)
	return m, nil
}

// matches: the whole line matches James' regex, up to orders RFC 9051 leaves free (FETCH items, flags in a list),
// keywords a server may add to FLAGS / PERMANENTFLAGS, and — for status responses — up to the human-readable
// text: tag, status and response code stay strict.
func (r *jamesRun) matches(re, l string) bool {
	if bodyStructure.MatchString(re) || strings.Contains(re, `HEADER\.FIELDS`) {
		// MIME type, subtype, encoding and parameter names are case-insensitive (RFC 2045 5.1, 6.1); servers
		// differ in the case they print them in.
		re = "(?i)" + re
	}
	rx, err := compiled(re)
	if err != nil {
		r.t.Fatalf("James regex %q does not compile in Go: %v", re, err)
	}
	for _, v := range lineVariants(l) {
		if rx.MatchString(v) || r.statusMatches(re, v) {
			return true
		}
	}
	// EXAMINE opens the mailbox read-only: PERMANENTFLAGS () is the RFC 9051 6.3.3 answer where James lists flags.
	return strings.Contains(re, `PERMANENTFLAGS`) && strings.HasPrefix(l, "* OK [PERMANENTFLAGS ()]") &&
		strings.Contains(strings.ToUpper(r.lastCmd), " EXAMINE ")
}

var bodyStructure = regexp.MustCompile(`FETCH \\\((?:.* )?(?:BODY|BODYSTRUCTURE) \\\(`)

var (
	expStatus = regexp.MustCompile(`^(\S+) (OK|NO|BAD|BYE|PREAUTH)(?: (.*))?$`)
	actStatus = regexp.MustCompile(`^(\S+) (OK|NO|BAD|BYE|PREAUTH)(?: (.*))?$`)
)

func (r *jamesRun) statusMatches(re, l string) bool {
	em, am := expStatus.FindStringSubmatch(re), actStatus.FindStringSubmatch(l)
	if em == nil || am == nil {
		return false
	}
	if tagRx, err := compiled(em[1]); err != nil || !tagRx.MatchString(am[1]) {
		return false
	}
	if em[2] != am[2] {
		// A command in the wrong state is a protocol error (BAD) or a refusal (NO): RFC 9051 allows both.
		wrongState := strings.Contains(strings.ToLower(em[3]), "not valid in this state")
		if !wrongState || (am[2] != "NO" && am[2] != "BAD") || (em[2] != "NO" && em[2] != "BAD") {
			return false
		}
	}
	wantCode := ""
	if rest := em[3]; strings.HasPrefix(rest, `\[`) {
		j := strings.Index(rest, `\]`)
		if j < 0 {
			return false // a code James matches with ".*": only the whole regex says
		}
		wantCode = rest[:j+2]
	}
	gotCode := ""
	if rest := am[3]; strings.HasPrefix(rest, "[") {
		if j := strings.Index(rest, "]"); j > 0 {
			gotCode = rest[:j+1]
		}
	}
	if !r.env.objectID && strings.HasPrefix(wantCode, `\[MAILBOXID`) {
		// OBJECTID is not offered: a tagged completion needs no MAILBOXID; the untagged one is optional and must
		// not stand in for another response code.
		return am[1] != "*" || strings.HasPrefix(gotCode, "[MAILBOXID")
	}
	if wantCode == "" {
		return true
	}
	codeRx, err := compiled(wantCode)
	return err == nil && codeRx.MatchString(gotCode)
}

// lineVariants: the line itself, then the line with flag lists sorted the way James prints them (system flags
// alphabetically, then keywords), with keywords dropped from FLAGS / PERMANENTFLAGS, and FETCH items reordered.
func lineVariants(l string) []string {
	out := []string{l}
	if q := quoteMailboxName(l); q != l {
		out = append(out, q)
		l = q
	}
	sorted := sortFlagLists(l)
	if sorted != l {
		out = append(out, sorted)
	}
	if strings.HasPrefix(l, "* FLAGS ") || strings.HasPrefix(l, "* OK [PERMANENTFLAGS ") {
		out = append(out, dropKeywords(sorted))
	}
	if strings.HasPrefix(l, "* ") && strings.Contains(l, " FETCH (") && !strings.HasSuffix(l, "}") {
		out = append(out, fetchPermutations(sorted)...)
		// An unsolicited FETCH may carry the UID besides the flags (RFC 9051 7.5.2; required with QRESYNC).
		if noUID := fetchUID.ReplaceAllString(sorted, "$1"); noUID != sorted {
			out = append(out, noUID)
			out = append(out, fetchPermutations(noUID)...)
		}
	}
	return out
}

var flagList = regexp.MustCompile(`(FLAGS \()([^()]*)(\))`)

func sortFlagLists(l string) string {
	return flagList.ReplaceAllStringFunc(l, func(m string) string {
		p := flagList.FindStringSubmatch(m)
		f := strings.Fields(p[2])
		sort.SliceStable(f, func(i, j int) bool {
			return flagRank(f[i]) < flagRank(f[j]) ||
				flagRank(f[i]) == flagRank(f[j]) && flagRank(f[i]) == 0 && strings.ToLower(f[i]) < strings.ToLower(f[j])
		})
		return p[1] + strings.Join(f, " ") + p[3]
	})
}

func flagRank(f string) int {
	switch {
	case f == `\*`:
		return 2
	case strings.HasPrefix(f, `\`):
		return 0
	}
	return 1
}

func dropKeywords(l string) string {
	return flagList.ReplaceAllStringFunc(l, func(m string) string {
		p := flagList.FindStringSubmatch(m)
		var keep []string
		for _, f := range strings.Fields(p[2]) {
			if strings.HasPrefix(f, `\`) {
				keep = append(keep, f)
			}
		}
		return p[1] + strings.Join(keep, " ") + p[3]
	})
}

var fetchUID = regexp.MustCompile(`(FETCH \(|\) )UID \d+ ?`)

var fetchHead = regexp.MustCompile(`^(\* \d+ FETCH \()(.*)\)$`)

// fetchPermutations returns the FETCH line with its items in every other order (RFC 9051 7.5.2 does not order
// them); up to 6 items.
func fetchPermutations(l string) []string {
	m := fetchHead.FindStringSubmatch(l)
	if m == nil {
		return nil
	}
	items, ok := splitFetchItems(m[2])
	if !ok || len(items) < 2 || len(items) > 6 {
		return nil
	}
	var out []string
	permute(items, 0, func(p []string) { out = append(out, m[1]+strings.Join(p, " ")+")") })
	return out
}

func permute(a []string, k int, f func([]string)) {
	if k == len(a) {
		f(a)
		return
	}
	for i := k; i < len(a); i++ {
		a[k], a[i] = a[i], a[k]
		permute(a, k+1, f)
		a[k], a[i] = a[i], a[k]
	}
}

// splitFetchItems splits "NAME value NAME value" where a name may hold a [section] and <partial>, and a value is
// an atom, a quoted string or a parenthesized list.
func splitFetchItems(s string) ([]string, bool) {
	var items []string
	i := 0
	for i < len(s) {
		start := i
		for i < len(s) && s[i] != ' ' {
			if s[i] == '[' {
				j := strings.IndexByte(s[i:], ']')
				if j < 0 {
					return nil, false
				}
				i += j
			}
			i++
		}
		if i >= len(s) {
			return nil, false
		}
		i++ // space between name and value
		end, ok := valueEnd(s, i)
		if !ok {
			return nil, false
		}
		items = append(items, s[start:end])
		i = end
		if i < len(s) {
			if s[i] != ' ' {
				return nil, false
			}
			i++
		}
	}
	return items, true
}

func valueEnd(s string, i int) (int, bool) {
	depth, quoted := 0, false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
			if !quoted && depth == 0 {
				return i + 1, true
			}
		case quoted:
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return i + 1, true
			}
			if depth < 0 {
				return 0, false
			}
		case c == ' ' && depth == 0:
			return i, true
		}
	}
	return i, depth == 0 && !quoted
}

// fail reports the mismatch with the session's recent exchange and what the server sent next, then stops the
// script (as James does).
func (r *jamesRun) fail(e jElem, js *jSession, want, got string) {
	r.t.Helper()
	var more []string
	for len(more) < 15 {
		l, err := js.read(500 * time.Millisecond)
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				more = append(more, "<"+err.Error()+">")
			}
			break
		}
		more = append(more, l)
	}
	r.t.Fatalf("%s: after %q\n  James expects: %s\n  Postern sent:  %q\n  then:          %q\n  session log (last lines):\n    %s",
		e.loc, e.lastCmd, want, got, more, strings.Join(js.log, "\n    "))
}

var mailboxData = regexp.MustCompile(`^(\* (?:LIST|LSUB|XLIST) \([^)]*\) (?:NIL|"(?:[^"\\]|\\.)*") )(.*)$|^(\* STATUS )(.*?)( \(.*\))$`)

// mailboxLine splits LIST / LSUB / STATUS data into the text around the mailbox name and the name itself.
func mailboxLine(l string) (parts [3]string, name string, ok bool) {
	m := mailboxData.FindStringSubmatch(l)
	switch {
	case m == nil:
		return parts, "", false
	case m[1] != "":
		parts = [3]string{m[1], m[2], ""}
	default:
		parts = [3]string{m[3], m[4], m[5]}
	}
	raw := parts[1]
	if strings.HasPrefix(raw, `"`) && strings.HasSuffix(raw, `"`) && len(raw) >= 2 {
		return parts, strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(raw[1 : len(raw)-1]), true
	}
	if strings.HasPrefix(raw, `"`) {
		if j := strings.Index(raw[1:], `" `); j >= 0 && !strings.Contains(raw[1:j+1], `\`) {
			parts[1], parts[2] = raw[:j+2], raw[j+2:]+parts[2] // a quoted name, then extended data
			return parts, raw[1 : j+1], true
		}
		return parts, "", false
	}
	if strings.HasPrefix(raw, "{") {
		return parts, "", false // a literal: left alone
	}
	if j := strings.IndexByte(raw, ' '); j >= 0 { // an atom, then extended data (RFC 5258 CHILDINFO)
		parts[1], parts[2] = raw[:j], raw[j:]+parts[2]
	}
	return parts, parts[1], true
}

// quoteMailboxName writes an atom mailbox name as a quoted string, as James does (RFC 9051 astring: both mean
// the same).
func quoteMailboxName(l string) string {
	parts, name, ok := mailboxLine(l)
	if !ok || strings.HasPrefix(parts[1], `"`) {
		return l
	}
	return parts[0] + imapQuote(name) + parts[2]
}
