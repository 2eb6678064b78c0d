package msginfo

import (
	"bytes"
	"testing"
)

// FuzzParse: Parse never fails on in-memory input, and whatever it returns passes checkInfo (offsets in
// bounds and nested, Marshal/Unmarshal round trip, well-formed IMAP output, sections and search without
// panic). The seed corpus is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{searchMsg, nestedMsg, "", "\n", "\r\n\r\n", "Subject: x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		i, err := Parse(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		checkInfo(t, data, i)
	})
}

// FuzzUnmarshal: corrupt stored info gives an error, never a panic; what it accepts can be rendered.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{searchMsg, nestedMsg, "Subject: x\n\nbody"} {
		i, err := Parse(bytes.NewReader([]byte(s)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(i.Marshal())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		i, err := Unmarshal(data)
		if err != nil {
			return
		}
		AppendBodyStructure(nil, i.Root, true)
		AppendEnvelope(nil, &i.Envelope)
		msg := make([]byte, 64)
		for _, p := range allPaths(i) {
			_, _ = i.SectionBytes(msg, Section{Path: p, Specifier: "MIME"})
			_, _ = i.BinaryBytes(msg, p)
		}
		TextContains(msg, i, "x")
	})
}
