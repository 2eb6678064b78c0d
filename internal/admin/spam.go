package admin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/postern/postern/internal/store"
)

// SpamFilter is the per-user statistical filter as `postern spam` uses it (bayes.Classifier implements it).
type SpamFilter interface {
	Train(ctx context.Context, userID int64, spam bool, r io.Reader) (changed bool, err error)
	Totals(ctx context.Context, userID int64) (store.BayesCount, error)
	Ready(store.BayesCount) bool
}

// SpamTrainReport says what SpamTrain did.
type SpamTrainReport struct {
	Messages int // messages read
	Learned  int // newly learned, or moved from the other class; the rest were known already
	Totals   store.BayesCount
	Ready    bool // the user has trained enough for the filter to judge
}

// maxTrainMessage bounds one message read for training (the filter reads less; this bounds memory for mbox
// splitting).
const maxTrainMessage = 64 << 20

// SpamTrain teaches a user's statistical filter that the messages in paths are spam (or ham). A path is a file
// holding one message, an mbox file (it starts with "From "), or a directory whose files are read recursively
// (a Maildir). "-" reads one message or mbox from stdin.
func (a *Admin) SpamTrain(ctx context.Context, f SpamFilter, address string, spam bool, paths []string, stdin io.Reader) (SpamTrainReport, error) {
	var rep SpamTrainReport
	u, err := a.spamUser(ctx, address)
	if err != nil {
		return rep, err
	}
	learn := func(msg []byte) error {
		changed, err := f.Train(ctx, u.ID, spam, bytes.NewReader(msg))
		if err != nil {
			return err
		}
		rep.Messages++
		if changed {
			rep.Learned++
		}
		return nil
	}
	for _, p := range paths {
		if err := eachMessage(p, stdin, learn); err != nil {
			return rep, err
		}
	}
	if rep.Totals, err = f.Totals(ctx, u.ID); err != nil {
		return rep, err
	}
	rep.Ready = f.Ready(rep.Totals)
	return rep, nil
}

// SpamStatus returns a user's trained message counts and whether the filter judges their mail yet.
func (a *Admin) SpamStatus(ctx context.Context, f SpamFilter, address string) (store.BayesCount, bool, error) {
	u, err := a.spamUser(ctx, address)
	if err != nil {
		return store.BayesCount{}, false, err
	}
	tot, err := f.Totals(ctx, u.ID)
	return tot, f.Ready(tot), err
}

func (a *Admin) spamUser(ctx context.Context, address string) (store.User, error) {
	key, err := addressKey(address)
	if err != nil {
		return store.User{}, err
	}
	u, err := a.st.GetUser(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return u, fmt.Errorf("no user %s", key)
	}
	return u, err
}

// eachMessage calls fn for every message of path ("-": stdin).
func eachMessage(path string, stdin io.Reader, fn func([]byte) error) error {
	if path == "-" {
		if stdin == nil {
			return errors.New("-: no standard input")
		}
		return eachInStream("-", stdin, fn)
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return eachInFile(path, fn)
	}
	return filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && d.Name()[0] != '.' {
			return eachInFile(p, fn)
		}
		return nil
	})
}

func eachInFile(path string, fn func([]byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return eachInStream(path, f, fn)
}

// eachInStream reads one message, or the messages of an mbox (the stream starts with "From "; mboxrd: one ">"
// is taken off each ">From " line).
func eachInStream(name string, r io.Reader, fn func([]byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(5)
	if string(head) != "From " {
		msg, err := io.ReadAll(io.LimitReader(br, maxTrainMessage))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := fn(msg); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	var msg []byte
	flush := func() error {
		if len(msg) == 0 {
			return nil
		}
		err := fn(msg)
		msg = nil
		return err
	}
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			line = append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				var more []byte
				more, err = br.ReadSlice('\n')
				line = append(line, more...)
			}
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("%s line %d: %w", name, n, err)
		}
		switch {
		case bytes.HasPrefix(line, []byte("From ")):
			if ferr := flush(); ferr != nil {
				return fmt.Errorf("%s line %d: %w", name, n, ferr)
			}
		case len(msg)+len(line) > maxTrainMessage:
			// too long: the rest of this message is dropped, as the filter would not read it anyway
		default:
			if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
				line = line[1:]
			}
			msg = append(msg, line...)
		}
		if err == io.EOF {
			if ferr := flush(); ferr != nil {
				return fmt.Errorf("%s: %w", name, ferr)
			}
			return nil
		}
	}
}
