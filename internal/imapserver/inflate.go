package imapserver

import (
	"bufio"
	"errors"
	"io"
)

// An inflater for COMPRESS=DEFLATE input (RFC 4978, RFC 1951). compress/flate's reader hands out decoded data
// only at a stored block (Z_SYNC_FLUSH) or when its window fills, but clients such as isync flush with
// Z_PARTIAL_FLUSH (an empty fixed-Huffman block), so a command could sit decoded and undelivered forever. This
// decoder (after zlib's puff.c) passes on what it has decoded before it would block for more input.

var errCorrupt = errors.New("deflate: corrupt input")

// huffman is a canonical Huffman code: count[len] codes of each length, symbols in code order.
type huffman struct {
	count  [16]uint16
	symbol []uint16
}

func newHuffman(lengths []uint8) (*huffman, error) {
	h := &huffman{symbol: make([]uint16, len(lengths))}
	for _, l := range lengths {
		h.count[l]++
	}
	left := 1
	for l := 1; l < 16; l++ {
		left = left<<1 - int(h.count[l])
		if left < 0 {
			return nil, errCorrupt // over-subscribed
		}
	}
	var offs [16]uint16
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	for s, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = uint16(s)
			offs[l]++
		}
	}
	return h, nil
}

// inflater decodes a raw deflate stream from src into out.
type inflater struct {
	src   *bufio.Reader
	out   io.Writer // receives decoded data in batches
	bits  uint32
	nbits uint
	win   [1 << 15]byte
	wpos  int
	pend  []byte // decoded, not yet written to out
}

// flush writes what is pending.
func (f *inflater) flush() error {
	if len(f.pend) == 0 {
		return nil
	}
	_, err := f.out.Write(f.pend)
	f.pend = f.pend[:0]
	return err
}

func (f *inflater) need(n uint) (uint32, error) {
	for f.nbits < n {
		if f.src.Buffered() == 0 {
			if err := f.flush(); err != nil { // deliver before blocking for input
				return 0, err
			}
		}
		b, err := f.src.ReadByte()
		if err != nil {
			return 0, err
		}
		f.bits |= uint32(b) << f.nbits
		f.nbits += 8
	}
	v := f.bits & (1<<n - 1)
	f.bits >>= n
	f.nbits -= n
	return v, nil
}

func (f *inflater) emit(b byte) error {
	f.win[f.wpos] = b
	f.wpos = (f.wpos + 1) & (len(f.win) - 1)
	f.pend = append(f.pend, b)
	if len(f.pend) >= 16<<10 {
		return f.flush()
	}
	return nil
}

func (f *inflater) decode(h *huffman) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		b, err := f.need(1)
		if err != nil {
			return 0, err
		}
		code |= int(b)
		count := int(h.count[l])
		if code-count < first {
			return int(h.symbol[index+(code-first)]), nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, errCorrupt
}

// run decodes blocks until the final one or an error.
func (f *inflater) run() error {
	for {
		final, err := f.need(1)
		if err != nil {
			return err
		}
		typ, err := f.need(2)
		if err != nil {
			return err
		}
		switch typ {
		case 0:
			err = f.stored()
		case 1:
			err = f.codes(fixedLit, fixedDist)
		case 2:
			err = f.dynamic()
		default:
			err = errCorrupt
		}
		if err != nil {
			return err
		}
		if final == 1 {
			if err := f.flush(); err != nil {
				return err
			}
			return io.EOF
		}
	}
}

func (f *inflater) stored() error {
	f.bits, f.nbits = 0, 0 // to a byte boundary
	v, err := f.need(32)
	if err != nil {
		return err
	}
	n := v & 0xffff
	if n != ^(v>>16)&0xffff {
		return errCorrupt
	}
	for ; n > 0; n-- {
		b, err := f.need(8)
		if err != nil {
			return err
		}
		if err := f.emit(byte(b)); err != nil {
			return err
		}
	}
	return f.flush() // a stored block ends a sync flush: deliver now
}

var (
	lenBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	dstBase  = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	dstExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

	fixedLit, fixedDist = fixedCodes()
)

func fixedCodes() (*huffman, *huffman) {
	var l [288]uint8
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	var d [30]uint8
	for i := range d {
		d[i] = 5
	}
	lit, _ := newHuffman(l[:])
	dist, _ := newHuffman(d[:])
	return lit, dist
}

// codes decodes one Huffman-coded block.
func (f *inflater) codes(lit, dist *huffman) error {
	for {
		sym, err := f.decode(lit)
		if err != nil {
			return err
		}
		switch {
		case sym < 256:
			if err := f.emit(byte(sym)); err != nil {
				return err
			}
			continue
		case sym == 256:
			return nil
		case sym > 285:
			return errCorrupt
		}
		sym -= 257
		e, err := f.need(uint(lenExtra[sym]))
		if err != nil {
			return err
		}
		length := int(lenBase[sym]) + int(e)
		ds, err := f.decode(dist)
		if err != nil {
			return err
		}
		if ds > 29 {
			return errCorrupt
		}
		e, err = f.need(uint(dstExtra[ds]))
		if err != nil {
			return err
		}
		d := int(dstBase[ds]) + int(e)
		for ; length > 0; length-- {
			if err := f.emit(f.win[(f.wpos-d)&(len(f.win)-1)]); err != nil {
				return err
			}
		}
	}
}

var clOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// dynamic reads the code tables of a dynamic block, then its codes.
func (f *inflater) dynamic() error {
	v, err := f.need(14)
	if err != nil {
		return err
	}
	nlen, ndist, ncode := int(v&31)+257, int(v>>5&31)+1, int(v>>10)+4
	if nlen > 286 || ndist > 30 {
		return errCorrupt
	}
	var cl [19]uint8
	for i := 0; i < ncode; i++ {
		b, err := f.need(3)
		if err != nil {
			return err
		}
		cl[clOrder[i]] = uint8(b)
	}
	ch, err := newHuffman(cl[:])
	if err != nil {
		return err
	}
	lengths := make([]uint8, nlen+ndist)
	for i := 0; i < len(lengths); {
		sym, err := f.decode(ch)
		if err != nil {
			return err
		}
		if sym < 16 {
			lengths[i] = uint8(sym)
			i++
			continue
		}
		var prev uint8
		var rep uint32
		switch sym {
		case 16:
			if i == 0 {
				return errCorrupt
			}
			prev = lengths[i-1]
			rep, err = f.need(2)
			rep += 3
		case 17:
			rep, err = f.need(3)
			rep += 3
		default:
			rep, err = f.need(7)
			rep += 11
		}
		if err != nil {
			return err
		}
		if i+int(rep) > len(lengths) {
			return errCorrupt
		}
		for ; rep > 0; rep-- {
			lengths[i] = prev
			i++
		}
	}
	if lengths[256] == 0 {
		return errCorrupt
	}
	lit, err := newHuffman(lengths[:nlen])
	if err != nil {
		return err
	}
	dist, err := newHuffman(lengths[nlen:])
	if err != nil {
		return err
	}
	return f.codes(lit, dist)
}

// newInflateReader returns a reader of the decoded stream; the decoding goroutine ends when src fails (the
// connection closes) or the stream ends.
func newInflateReader(src *bufio.Reader) io.Reader {
	pr, pw := io.Pipe()
	f := &inflater{src: src, out: pw}
	go func() {
		err := f.run()
		if err == nil {
			err = io.EOF
		}
		pw.CloseWithError(err)
	}()
	return pr
}
