// Command postern is the whole mail system in one binary: `postern serve` runs it, the other subcommands manage
// it. This package is thin on purpose: flags, signals and output; the work lives in internal/app, internal/admin,
// internal/pki and internal/tlsmgr.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/postern/postern/internal/admin"
	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
)

// version is set at build time: go build -ldflags "-X main.version=...".
var version = "dev"

// cli carries the global flags and the process's streams to the subcommands.
type cli struct {
	configPath string
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit status: errors are reported as "postern: <one line>".
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	root := c.root()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintf(stderr, "postern: %s\n", oneLine(err))
		return 1
	}
	return 0
}

// oneLine keeps error reports on one line, as `postern check` promises.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

func (c *cli) root() *cobra.Command {
	root := &cobra.Command{
		Use:           "postern",
		Short:         "Postern: a complete mail system in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&c.configPath, "config", "c", "",
		"config file (default "+config.DefaultPath+", then ./"+config.FallbackPath+")")
	root.AddCommand(c.serveCmd(), c.initCmd(), c.withStoreCheck(c.withEngineCheck(c.checkCmd())), c.domainCmd(), c.userCmd(), c.aliasCmd(), c.accessCmd(),
		c.mailboxCmd(), c.queueCmd(), c.caCmd(), c.versionCmd(), c.dnsCmd(), c.spamCmd())
	return root
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use: "version", Short: "print the version", Args: cobra.NoArgs,
		Run: func(*cobra.Command, []string) { fmt.Fprintln(c.stdout, "postern", version) },
	}
}

// loadConfig reads the config file named by -c, or the default one.
func (c *cli) loadConfig() (*config.Config, error) {
	return config.Load(config.Find(c.configPath))
}

// withAdmin loads the config, opens its store (creating the data directory and database, and migrating the
// schema, when needed) and runs fn with an Admin on it.
func (c *cli) withAdmin(fn func(ctx context.Context, a *admin.Admin) error) error {
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	ctx := context.Background()
	st, err := app.OpenStore(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	err = fn(ctx, admin.New(st).WithHashOptions(app.HashOptions(cfg)))
	if cerr := st.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close store: %w", cerr)
	}
	return err
}

// readPassword reads one line from stdin (--password-stdin), or prompts twice without echo on a terminal.
func (c *cli) readPassword(fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(c.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	f, ok := c.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("no terminal to ask for the password: use --password-stdin")
	}
	fd := int(f.Fd())
	fmt.Fprint(c.stderr, "Password: ")
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(c.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	fmt.Fprint(c.stderr, "Again: ")
	again, err := term.ReadPassword(fd)
	fmt.Fprintln(c.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if string(pw) != string(again) {
		return "", errors.New("the passwords do not match")
	}
	return string(pw), nil
}
