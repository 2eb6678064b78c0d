package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/postern/postern/internal/admin"
	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/filter/bayes"
)

// spamCmd is `postern spam train --spam|--ham ADDRESS FILE...` (DESIGN.md) and `postern spam status ADDRESS`.
func (c *cli) spamCmd() *cobra.Command {
	var spam, ham bool
	train := &cobra.Command{
		Use:   "train --spam|--ham ADDRESS FILE...",
		Short: "teach a user's statistical filter (FILE: a message, an mbox, a Maildir directory, or - for stdin)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			if spam == ham {
				return errors.New("give exactly one of --spam and --ham")
			}
			return c.withSpamFilter(func(ctx context.Context, a *admin.Admin, f admin.SpamFilter) error {
				rep, err := a.SpamTrain(ctx, f, args[0], spam, args[1:], c.stdin)
				if rep.Messages > 0 || err == nil {
					fmt.Fprintf(c.stdout, "%d messages read, %d learned; %s now has %d spam and %d ham",
						rep.Messages, rep.Learned, args[0], rep.Totals.Spam, rep.Totals.Ham)
					if !rep.Ready {
						fmt.Fprint(c.stdout, " (too few to judge mail yet)")
					}
					fmt.Fprintln(c.stdout)
				}
				return err
			})
		},
	}
	train.Flags().BoolVar(&spam, "spam", false, "the messages are spam")
	train.Flags().BoolVar(&ham, "ham", false, "the messages are not spam")
	status := &cobra.Command{
		Use: "status ADDRESS", Short: "show how much a user's statistical filter has learned", Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return c.withSpamFilter(func(ctx context.Context, a *admin.Admin, f admin.SpamFilter) error {
				tot, ready, err := a.SpamStatus(ctx, f, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "spam\t%d\nham\t%d\nready\t%v\n", tot.Spam, tot.Ham, ready)
				return nil
			})
		},
	}
	return group("spam", "the per-user statistical spam filter", train, status)
}

// withSpamFilter opens the store like withAdmin and runs fn with the statistical filter over it, configured as
// the server's ([antispam] bayes_min_spam, bayes_min_ham, bayes_threshold).
func (c *cli) withSpamFilter(fn func(ctx context.Context, a *admin.Admin, f admin.SpamFilter) error) error {
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	st, err := app.OpenStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	as := cfg.Antispam
	f, err := app.NewBayes(st, bayes.Options{MinSpam: as.BayesMinSpam, MinHam: as.BayesMinHam, Threshold: as.BayesThreshold, Logger: log})
	if err == nil {
		err = fn(ctx, admin.New(st), f)
	}
	if cerr := st.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close store: %w", cerr)
	}
	return err
}
