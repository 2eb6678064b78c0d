package imapserver

import (
	"bufio"
	"compress/flate"
	"io"
	"testing"
)

func TestImplicitTLS(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ImplicitTLS, o.AllowPlaintextAuth = true, false })
	tc := e.dial()
	tc.cmd("a1 CAPABILITY").ok().lacks("CAPABILITY .*STARTTLS").has("CAPABILITY .*AUTH=PLAIN")
	tc.cmd("a2 AUTHENTICATE PLAIN " + plainIR("alice@example.org", "secret")).ok()
	tc.cmd("a3 SELECT INBOX").ok()
}

// flateConn is the client side of COMPRESS=DEFLATE.
type flateConn struct {
	r io.Reader
	w *flate.Writer
}

func (f *flateConn) Read(b []byte) (int, error) { return f.r.Read(b) }
func (f *flateConn) Write(b []byte) (int, error) {
	n, err := f.w.Write(b)
	if err == nil {
		err = f.w.Flush()
	}
	return n, err
}

func TestCompressDeflate(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ImplicitTLS = true })
	e.deliver("INBOX", msgN(1))
	tc := e.login()
	tc.cmd("a1 COMPRESS DEFLATE").ok()
	w, _ := flate.NewWriter(tc.c, flate.DefaultCompression)
	fc := &flateConn{r: flate.NewReader(tc.br), w: w}
	tc.br = bufio.NewReader(fc)
	tc.c = wrapConn{tc.c, fc}
	tc.cmd("a2 SELECT INBOX").ok().has("1 EXISTS")
	tc.cmd("a3 FETCH 1 BODY[]").ok().has(`(?s)1 FETCH .*Body number 1`)
	tc.cmd("a4 COMPRESS DEFLATE").no().code("COMPRESSIONACTIVE")
	tc.cmd("a5 CAPABILITY").ok().lacks("CAPABILITY .*COMPRESS")
}
