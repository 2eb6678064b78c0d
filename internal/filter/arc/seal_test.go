package arc

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"gopkg.in/yaml.v3"

	"github.com/postern/postern/internal/dns"
	"github.com/postern/postern/internal/filter/internal/sharedtest"
)

const signSuite = "arc/tests/arc-draft-sign-tests.yml"

// TestValiMailSignSuite seals each message of the ValiMail signing suite with its key and time and compares the
// three fields with the expected ones tag by tag (b= included: RSA PKCS #1 v1.5 is deterministic).
func TestValiMailSignSuite(t *testing.T) {
	pass, fail := 0, 0
	eachSuiteGroup(t, signSuite, func(top map[string]*yaml.Node, tests []suiteCase) {
		blk, _ := pem.Decode([]byte(top["privatekey"].Value))
		key, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range tests {
			name, tc := st.name, st.tc
			msg := crlf(tc["message"].Value)
			var ts time.Time
			if n, err := parseInt(tc["t"].Value); err == nil {
				ts = time.Unix(n, 0)
			}
			srv := tc["srv-id"].Value
			out, err := Seal(strings.NewReader(string(msg)), SealOptions{
				Domain: top["domain"].Value, Selector: top["sel"].Value, Signer: key, AuthServID: srv,
				Headers: strings.Split(tc["sig-headers"].Value, ":"), Time: ts, ChainValidation: arcResult(string(msg), srv),
			})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got, ok := compareSet(t, name, out, tc); ok {
				pass++
			} else {
				fail++
				t.Logf("%s: got\n%s", name, got)
			}
		}
	})
	t.Logf("ARC signing suite: %d passed, %d failed", pass, fail)
}

func parseInt(s string) (int64, error) {
	var n int64
	if s == "" {
		return 0, errors.New("empty")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errors.New("not a number")
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// arcResult reads the arc= result the suite stamps into the newest Authentication-Results of srv ("accurate
// chain validation status", per its README); none when absent.
func arcResult(msg, srv string) authres.ResultValue {
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	for _, f := range splitFieldsTest(head) {
		name, v, _ := strings.Cut(f, ":")
		if !strings.EqualFold(name, "Authentication-Results") {
			continue
		}
		id, results, err := authres.Parse(strings.Join(strings.Fields(v), " "))
		if err != nil || id != srv {
			continue
		}
		for _, r := range results {
			switch r := r.(type) {
			case *authres.ARCResult:
				return r.Value
			case *authres.GenericResult:
				if r.Method == "arc" {
					return r.Value
				}
			}
		}
	}
	return authres.ResultNone
}

func splitFieldsTest(head string) []string {
	var out []string
	for _, line := range strings.Split(head, "\r\n") {
		if line != "" && (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1] += line
			continue
		}
		out = append(out, line)
	}
	return out
}

// compareSet checks Seal's output against the expected AS, AMS and AAR values.
func compareSet(t *testing.T, name, out string, tc map[string]*yaml.Node) (string, bool) {
	t.Helper()
	got := map[string]string{}
	for _, f := range splitFieldsTest(strings.TrimSuffix(out, "\r\n")) {
		if k, v, ok := strings.Cut(f, ":"); ok {
			got[k] = v
		}
	}
	ok := true
	for key, header := range map[string]string{"AS": "ARC-Seal", "AMS": "ARC-Message-Signature", "AAR": "ARC-Authentication-Results"} {
		want := strings.TrimSpace(tc[key].Value)
		g := got[header]
		if want == "" {
			if out != "" {
				t.Errorf("%s: sealed a chain that must not grow", name)
				ok = false
			}
			continue
		}
		if key == "AAR" {
			if norm(g) != norm(want) {
				t.Errorf("%s: AAR\n got %s\nwant %s", name, norm(g), norm(want))
				ok = false
			}
			continue
		}
		gt, err1 := parseTags(g)
		wt, err2 := parseTags(want)
		if err1 != nil || err2 != nil {
			t.Errorf("%s: %s tags: %v %v", name, key, err1, err2)
			ok = false
			continue
		}
		for k, wv := range wt {
			gv := gt[k]
			if k == "b" || k == "bh" || k == "h" {
				gv, wv = stripFWS(gv), stripFWS(wv)
			}
			if gv != wv {
				t.Errorf("%s: %s %s=\n got %s\nwant %s", name, key, k, gv, wv)
				ok = false
			}
		}
	}
	return out, ok
}

func norm(s string) string {
	return strings.TrimSuffix(strings.Join(strings.Fields(s), " "), ";")
}

// TestSealValidates: a message sealed twice (RSA, then Ed25519) validates, and a change after sealing fails.
func TestSealValidates(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(nil)
	blk, _ := pem.Decode(readKey(t))
	rsaKey, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	res := &dns.Fake{TXT: map[string][]string{
		"r._domainkey.list.example": {"v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(rsaPub)},
		"e._domainkey.fwd.example":  {"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edKey.Public().(ed25519.PublicKey))},
	}}
	c, _ := New(Options{Resolver: res})
	msg := "Authentication-Results: mx.list.example; spf=pass smtp.mailfrom=a@b.example\r\nFrom: a@b.example\r\nTo: list@list.example\r\nSubject: hi\r\n\r\nHello  there \r\n\r\n"
	set1, err := Seal(strings.NewReader(msg), SealOptions{Domain: "list.example", Selector: "r", Signer: rsaKey, AuthServID: "mx.list.example"})
	if err != nil || set1 == "" {
		t.Fatalf("seal 1: %q %v", set1, err)
	}
	msg = set1 + "Subject-Prefix: changed by the list\r\n" + msg
	if r := c.Validate(context.Background(), message(t, []byte(msg))); r.Value != authres.ResultPass {
		t.Fatalf("after seal 1: %+v", r)
	}
	set2, err := Seal(strings.NewReader(msg), SealOptions{Domain: "fwd.example", Selector: "e", Signer: edKey, AuthServID: "mx.fwd.example", ChainValidation: authres.ResultPass})
	if err != nil || !strings.Contains(set2, "cv=pass") || !strings.Contains(set2, "i=2") {
		t.Fatalf("seal 2: %q %v", set2, err)
	}
	msg = set2 + msg
	r := c.Validate(context.Background(), message(t, []byte(msg)))
	if r.Value != authres.ResultPass || r.Instances != 2 || strings.Join(r.Sealers, ",") != "list.example,fwd.example" {
		t.Fatalf("after seal 2: %+v", r)
	}
	if r := c.Validate(context.Background(), message(t, []byte(strings.Replace(msg, "Hello", "Jello", 1)))); r.Value != authres.ResultFail {
		t.Fatalf("tampered: %+v", r)
	}
	for _, line := range strings.Split(msg, "\r\n") {
		if len(line) > 998 {
			t.Fatalf("line of %d octets", len(line))
		}
	}
}

func readKey(t *testing.T) []byte {
	t.Helper()
	return sharedtest.Read(t, "dkim/rfc-vectors/rfc8463-rsa-test.private.pem")
}
