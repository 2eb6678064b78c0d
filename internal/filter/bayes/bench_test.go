package bayes

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// BenchmarkClassify classifies a 4 KiB message for a user trained on 40 messages (token lookups in SQLite).
func BenchmarkClassify(b *testing.B) {
	ctx := context.Background()
	st, uid := openStore(b)
	c, _ := New(Options{Store: st, MinSpam: 20, MinHam: 20})
	for i := range 40 {
		msg := fmt.Sprintf("Subject: message %d\r\n\r\n%s\r\n", i, bytes.Repeat([]byte(fmt.Sprintf("word%d other%d text ", i, i%7)), 50))
		if _, err := c.Train(ctx, uid, i%2 == 0, bytes.NewReader([]byte(msg))); err != nil {
			b.Fatal(err)
		}
	}
	var body bytes.Buffer
	for i := range 400 {
		fmt.Fprintf(&body, "word%d ", i)
	}
	msg := []byte("Subject: test\r\n\r\n" + body.String())
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := c.Probability(ctx, uid, bytes.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenize tokenizes a 4 KiB message.
func BenchmarkTokenize(b *testing.B) {
	var body bytes.Buffer
	for i := range 400 {
		fmt.Fprintf(&body, "word%d ", i)
	}
	msg := []byte("Subject: test\r\n\r\n" + body.String())
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		Tokenize(msg)
	}
}
