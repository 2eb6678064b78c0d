// Command benchtool runs the side-by-side benchmark workloads other than the IMAP mix (bench/imapload) and
// writes their results; bench/run.sh drives it. Every subcommand appends one JSON line per run to -out.
//
//	benchtool hash PASSWORD                 an argon2id hash with Postern's parameters, for Dovecot's passwd-file
//	benchtool fsync -dir DIR                the disk's fsync ceiling
//	benchtool smtp ...                      time smtp-source against one server, wait for local delivery
//	benchtool fill ...                      APPEND messages into users' INBOXes
//	benchtool pop3 ...                      RETR every message of a maildrop
//	benchtool idleconns ...                 memory per idle IMAP connection
//	benchtool notify ...                    SMTP submission -> IMAP IDLE EXISTS latency
//	benchtool report ...                    medians and ratios into docs/benchmarks.md
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmds := map[string]func(ctx context.Context, args []string) error{
		"hash": cmdHash, "fsync": cmdFsync, "smtp": cmdSMTP, "fill": cmdFill, "pop3": cmdPOP3,
		"idleconns": cmdIdleConns, "notify": cmdNotify, "report": cmdReport,
	}
	run, ok := cmds[os.Args[1]]
	if !ok {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "benchtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchtool hash|fsync|smtp|fill|pop3|idleconns|notify|report [flags] (see -h of each)")
	os.Exit(2)
}

// common are the flags every measuring subcommand takes.
type common struct {
	out    string
	server string
	run    int
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.out, "out", "-", "results file (JSON Lines) to append to; - for standard output")
	fs.StringVar(&c.server, "server", "", "name of the server under test in the results (postern, postfix, dovecot, disk)")
	fs.IntVar(&c.run, "run", 1, "run number")
}
