// Command postern is the whole mail system in one binary: `postern serve` runs it, the other subcommands manage
// it. This file is thin on purpose: the work lives in internal/app and internal/admin.
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
	"github.com/postern/postern/internal/store"
)

var version = "dev" // set with -ldflags "-X main.version=..."

// cli carries the global flags to the subcommands.
type cli struct {
	configPath string
	stdin      io.Reader
	stdout     io.Writer
}

func main() {
	c := &cli{stdin: os.Stdin, stdout: os.Stdout}
	root := c.root()
	if err := root.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "postern: %s\n", oneLine(err))
		os.Exit(1)
	}
}

// oneLine keeps error reports on one line, as `postern check` promises.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

func (c *cli) root() *cobra.Command {
	root := &cobra.Command{
		Use:           "postern",
		Short:         "Postern: a complete mail system in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&c.configPath, "config", "c", "", "config file (default "+config.DefaultPath+", then ./"+config.FallbackPath+")")
	root.AddCommand(c.serveCmd(), c.initCmd(), c.checkCmd(), c.domainCmd(), c.userCmd(), c.aliasCmd(), c.accessCmd(),
		c.mailboxCmd(), c.queueCmd(), c.caCmd(), &cobra.Command{
			Use: "version", Short: "print the version", Args: cobra.NoArgs,
			Run: func(cmd *cobra.Command, _ []string) { fmt.Fprintln(c.stdout, "postern", version) },
		})
	return root
}

// loadConfig reads the config file.
func (c *cli) loadConfig() (*config.Config, error) {
	return config.Load(config.Find(c.configPath))
}

// withAdmin opens the store of the config and runs fn with an Admin on it.
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
	defer st.Close()
	return fn(ctx, admin.New(st))
}

// readPassword reads one line from stdin (--password-stdin) or prompts without echo on a terminal.
func (c *cli) readPassword(fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(c.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", errors.New("no terminal to ask for the password: use --password-stdin")
	}
	fmt.Fprint(os.Stderr, "Password: ")
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprint(os.Stderr, "Again: ")
	again, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", err
	}
	if string(pw) != string(again) {
		return "", errors.New("passwords do not match")
	}
	return string(pw), nil
}

// notFoundHint turns store.ErrNotFound into a plain message.
func notFoundHint(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s not found", what)
	}
	if errors.Is(err, store.ErrExists) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return err
}
