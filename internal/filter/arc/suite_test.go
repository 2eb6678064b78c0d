package arc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/authres"
	"gopkg.in/yaml.v3"

	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/filter"
	"github.com/postern/postern/internal/filter/internal/sharedtest"
)

// The ValiMail ARC suite (draft-18 = RFC 8617), read in place from the shared test data.
const suiteFile = "arc/tests/arc-draft-validation-tests.yml"

// knownFailures are suite tests whose expected result we do not produce, with the reason.
var knownFailures = map[string]string{}

// message wraps raw bytes as the DATA-stage message.
func message(t testing.TB, raw []byte) *filter.Message {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		h = textproto.Header{}
	}
	return &filter.Message{Size: int64(len(raw)), Header: h,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }}
}

func crlf(s string) []byte {
	return []byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n"))
}

// suiteCase is one test of a ValiMail suite group.
type suiteCase struct {
	name string
	tc   map[string]*yaml.Node
}

// eachSuiteGroup calls fn for each group (YAML document) of a ValiMail suite file with its top-level mapping and
// its tests in order. Test names repeat within a group (as_fields_b_head_case...), so the tests mapping is walked
// pair by pair. rel is the suite's path in the shared test data (sharedtest).
func eachSuiteGroup(t *testing.T, rel string, fn func(top map[string]*yaml.Node, tests []suiteCase)) {
	t.Helper()
	dec := yaml.NewDecoder(sharedtest.Open(t, rel))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			t.Fatal(err)
		}
		top := mapping(doc.Content[0])
		var tests []suiteCase
		if n := top["tests"]; n != nil {
			for i := 0; i+1 < len(n.Content); i += 2 {
				tests = append(tests, suiteCase{n.Content[i].Value, mapping(n.Content[i+1])})
			}
		}
		fn(top, tests)
	}
}

func TestValiMailSuite(t *testing.T) {
	pass, fail, known := 0, 0, 0
	eachSuiteGroup(t, suiteFile, func(top map[string]*yaml.Node, tests []suiteCase) {
		res := &dns.Fake{TXT: map[string][]string{}}
		for _, key := range []string{"txt_records", "txt-records"} {
			if n := top[key]; n != nil {
				for i := 0; i+1 < len(n.Content); i += 2 {
					res.TXT[strings.ToLower(n.Content[i].Value)] = []string{n.Content[i+1].Value}
				}
			}
		}
		c, err := New(Options{Resolver: res})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range tests {
			name, tc := st.name, st.tc
			want := strings.ToLower(strings.TrimSpace(tc["cv"].Value))
			if want == "" {
				// Three tests whose chain carries cv=fail leave cv empty; RFC 8617 5.2 step 2 makes that "fail".
				want = "fail"
			}
			r := c.Validate(context.Background(), message(t, crlf(tc["message"].Value)))
			_, isKnown := knownFailures[name]
			switch ok := string(r.Value) == want; {
			case ok && isKnown:
				t.Errorf("%s passes now: remove it from knownFailures", name)
			case ok:
				pass++
			case isKnown:
				known++
			default:
				fail++
				t.Errorf("%s (%s): want %s, got %s (%s)", name, tc["description"].Value, want, r.Value, r.Reason)
			}
		}
	})
	t.Logf("ARC validation suite: %d passed, %d known failures, %d failed", pass, known, fail)
}

func mapping(n *yaml.Node) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		out[n.Content[i].Value] = n.Content[i+1]
	}
	return out
}

func TestCheckRecordsResult(t *testing.T) {
	c, err := New(Options{Resolver: &dns.Fake{}})
	if err != nil {
		t.Fatal(err)
	}
	txn := &filter.Txn{Conn: &filter.Conn{IP: netip.MustParseAddr("192.0.2.1")}, Values: map[string]any{}}
	v := c.Data(context.Background(), txn, message(t, crlf("From: a@b.example\n\nhi\n")))
	if v.Action != filter.Accept || txn.Values[Name].(*Result).Value != authres.ResultNone {
		t.Fatalf("unsealed message: %+v %+v", v, txn.Values[Name])
	}
	if h := authres.Format("mx", txn.Results); !strings.Contains(h, "arc=none") {
		t.Errorf("Authentication-Results %q", h)
	}
	// A broken chain fails but is not rejected.
	txn = &filter.Txn{Conn: &filter.Conn{}, Values: map[string]any{}}
	v = c.Data(context.Background(), txn, message(t, crlf("ARC-Seal: i=1; cv=none\nFrom: a@b.example\n\nhi\n")))
	if v.Action != filter.Accept || txn.Values[Name].(*Result).Value != authres.ResultFail {
		t.Fatalf("broken chain: %+v %+v", v, txn.Values[Name])
	}
}

func FuzzValidate(f *testing.F) {
	f.Add([]byte("ARC-Seal: a=rsa-sha256; b=AA==; cv=none; d=example.org; i=1; s=dummy\r\nARC-Message-Signature: a=rsa-sha256; b=AA==; bh=AA==; c=relaxed/relaxed; d=example.org; h=from; i=1; s=dummy\r\nARC-Authentication-Results: i=1; x; spf=pass\r\nFrom: a@b\r\n\r\nbody\r\n"))
	c, _ := New(Options{Resolver: &dns.Fake{}})
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_ = c.Validate(context.Background(), message(t, raw))
		_, _ = Seal(bytes.NewReader(raw), SealOptions{Domain: "x.example", Selector: "s", Signer: key, AuthServID: "mx"})
		_, _ = parseTags(string(raw))
	})
}

// TestStalwartMessages validates the real-world sealed messages of stalwart's mail-auth (key records, a blank
// line, the message).
func TestStalwartMessages(t *testing.T) {
	for _, name := range []string{"001.txt", "002.txt"} {
		b := sharedtest.Read(t, "stalwart-mail-auth/resources/arc/"+name)
		records, msg, _ := strings.Cut(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n")
		res := &dns.Fake{TXT: map[string][]string{}}
		for _, line := range strings.Split(records, "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
				res.TXT[strings.ToLower(k)] = []string{v}
			}
		}
		c, _ := New(Options{Resolver: res})
		r := c.Validate(context.Background(), message(t, crlf(msg)))
		if r.Value != authres.ResultPass {
			t.Errorf("%s: %+v", name, r)
		}
		t.Logf("%s: arc=%s, %d sets sealed by %v", name, r.Value, r.Instances, r.Sealers)
	}
}
