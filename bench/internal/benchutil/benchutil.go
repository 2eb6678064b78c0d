// Package benchutil holds what the side-by-side benchmark tools share: result records, percentiles, a dialer
// that spreads connections over loopback source addresses, IMAP login and the test messages.
package benchutil

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// Result is one run of one workload against one server: a line of the results file (JSON Lines).
type Result struct {
	Workload string             `json:"workload"`
	Server   string             `json:"server"`
	Run      int                `json:"run"`
	Metrics  map[string]float64 `json:"metrics"`
	Note     string             `json:"note,omitempty"`
}

// AppendResult appends r to the results file at path ("" or "-": standard output) and echoes it to stderr so a
// person watching the run sees each number as it comes.
func AppendResult(path string, r Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	fmt.Fprintf(os.Stderr, "result: %s", b)
	if path == "" || path == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("results file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("results file: %w", err)
	}
	return f.Close()
}

// Percentile returns the p-th percentile (0..100) of ds by the nearest-rank method; ds is sorted in place.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	rank := int(p/100*float64(len(ds))+0.5) - 1
	rank = max(0, min(rank, len(ds)-1))
	return ds[rank]
}

// Ms converts d to milliseconds for the results file.
func Ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Dialer spreads connections over loopback source addresses 127.0.N.M, PerIP connections each, so per-address
// connection limits (Postern's 50 per IP for IMAP, Dovecot's mail_max_userip_connections) measure the server,
// not the limit. Loopback answers for all of 127.0.0.0/8 on Linux.
type Dialer struct {
	PerIP int // connections per source address; 0: all from 127.0.0.1
	n     atomic.Int64
}

// DialContext connects to addr from the next source address.
func (d *Dialer) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: 30 * time.Second}
	if d.PerIP > 0 {
		i := int(d.n.Add(1)-1) / d.PerIP
		// 127.0.1.1 upwards: skip 127.0.0.x, where other local services live.
		ip := net.IPv4(127, byte(1+i/250>>8), byte(1+i/250&0xff), byte(1+i%250))
		nd.LocalAddr = &net.TCPAddr{IP: ip}
	}
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return c, nil
}

// LoginIMAP connects to addr over plain TCP (both servers under test allow plaintext logins for the benchmark)
// and logs in.
func LoginIMAP(ctx context.Context, d *Dialer, addr, user, pass string, opts *imapclient.Options) (*imapclient.Client, error) {
	conn, err := d.DialContext(ctx, addr)
	if err != nil {
		return nil, err
	}
	c := imapclient.New(conn, opts)
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if err := c.Login(user, pass).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("login %s: %w", user, err)
	}
	return c, nil
}

// User returns the i-th (1-based) user of a pattern like "bench%d@bench.test"; a pattern without %d is one user.
func User(pattern string, i int) string {
	if !strings.Contains(pattern, "%d") {
		return pattern
	}
	return fmt.Sprintf(pattern, i)
}
