package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/postern/postern/internal/admin"
	"github.com/postern/postern/internal/config"
)

// group builds "postern NOUN" with its subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{Use: use, Short: short}
	g.AddCommand(subs...)
	return g
}

// run wraps an admin operation as a cobra RunE.
func (c *cli) run(fn func(ctx context.Context, a *admin.Admin, args []string) error) func(*cobra.Command, []string) error {
	return func(_ *cobra.Command, args []string) error {
		return c.withAdmin(func(ctx context.Context, a *admin.Admin) error { return fn(ctx, a, args) })
	}
}

func (c *cli) domainCmd() *cobra.Command {
	return group("domain", "manage local domains",
		&cobra.Command{Use: "add DOMAIN", Short: "add a local domain", Args: cobra.ExactArgs(1),
			RunE: c.run(func(ctx context.Context, a *admin.Admin, args []string) error {
				return a.AddDomain(ctx, args[0])
			})},
		&cobra.Command{Use: "list", Short: "list local domains", Args: cobra.NoArgs,
			RunE: c.run(func(ctx context.Context, a *admin.Admin, _ []string) error {
				ds, err := a.ListDomains(ctx)
				for _, d := range ds {
					fmt.Fprintln(c.stdout, d.Name)
				}
				return err
			})},
		&cobra.Command{Use: "rm DOMAIN", Short: "remove a domain that has no users or aliases", Args: cobra.ExactArgs(1),
			RunE: c.run(func(ctx context.Context, a *admin.Admin, args []string) error {
				return a.RemoveDomain(ctx, args[0])
			})},
	)
}

func (c *cli) userCmd() *cobra.Command {
	var stdin bool
	var quota string
	add := &cobra.Command{Use: "add ADDRESS", Short: "add a user", Args: cobra.ExactArgs(1),
		RunE: c.run(func(ctx context.Context, a *admin.Admin, args []string) error {
			var q int64
			if quota != "" {
				var err error
				if q, err = config.ParseSize(quota); err != nil {
					return fmt.Errorf("--quota: %w", err)
				}
			}
			pw, err := c.readPassword(stdin)
			if err != nil {
				return err
			}
			_, err = a.AddUser(ctx, args[0], pw, q)
			return err
		})}
	add.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	add.Flags().StringVar(&quota, "quota", "", "mailbox quota, e.g. 1GiB (default: unlimited)")
	var pwStdin bool
	passwd := &cobra.Command{Use: "passwd ADDRESS", Short: "change a user's password", Args: cobra.ExactArgs(1),
		RunE: c.run(func(ctx context.Context, a *admin.Admin, args []string) error {
			pw, err := c.readPassword(pwStdin)
			if err != nil {
				return err
			}
			return a.SetPassword(ctx, args[0], pw)
		})}
	passwd.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from standard input")
	return group("user", "manage users", add, passwd,
		&cobra.Command{Use: "list [DOMAIN]", Short: "list users", Args: cobra.MaximumNArgs(1),
			RunE: c.run(func(ctx context.Context, a *admin.Admin, args []string) error {
				dom := ""
				if len(args) == 1 {
					dom = args[0]
				}
				us, err := a.ListUsers(ctx, dom)
				tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
				for _, u := range us {
					q := "unlimited"
					if u.QuotaBytes > 0 {
						q = fmt.Sprint(u.QuotaBytes)
					}
					fmt.Fprintf(tw, "%s\t%s\n", u.Address, q)
				}
				tw.Flush()
				return err
			})},
		&cobra.Command{Use: "rm ADDRESS", Short: "remove a user and their mail", Args: cobra.ExactArgs(1),
			RunE: c.run(func(ctx context.Context, a *admin.Admin, args []string) error {
				return a.RemoveUser(ctx, args[0])
			})},
	)
}

func (c *cli) aliasCmd() *cobra.Command {
	return group("alias", "manage aliases (TARGET: local or remote address; @domain maps a catch-all)",
		&cobra.Command{Use: "add ADDRESS TARGET [TARGET...]", Short: "add or replace an alias", Args: cobra.MinimumNArgs(2),
			RunE: c.run(func(ctx context.Context, a *admin.Admin, args []string) error {
				return a.AddAlias(ctx, args[0], args[1:]...)
			})},
		&cobra.Command{Use: "list", Short: "list aliases", Args: cobra.NoArgs,
			RunE: c.run(func(ctx context.Context, a *admin.Admin, _ []string) error {
				as, err := a.ListAliases(ctx)
				for _, al := range as {
					fmt.Fprintf(c.stdout, "%s\t%s\n", al.Address, strings.Join(al.Targets, ", "))
				}
				return err
			})},
		&cobra.Command{Use: "rm ADDRESS", Short: "remove an alias", Args: cobra.ExactArgs(1),
			RunE: c.run(func(ctx context.Context, a *admin.Admin, args []string) error {
				return a.RemoveAlias(ctx, args[0])
			})},
	)
}

func (c *cli) accessCmd() *cobra.Command {
	return group("access", "manage the access table (PATTERN: IP, CIDR, domain or address; ACTION: OK, RELAY, REJECT, DISCARD)",
		&cobra.Command{Use: "add PATTERN ACTION", Short: "add or replace a rule", Args: cobra.ExactArgs(2),
			RunE: c.run(func(ctx context.Context, a *admin.Admin, args []string) error {
				return a.AddAccess(ctx, args[0], args[1])
			})},
		&cobra.Command{Use: "list", Short: "list rules", Args: cobra.NoArgs,
			RunE: c.run(func(ctx context.Context, a *admin.Admin, _ []string) error {
				rs, err := a.ListAccess(ctx)
				for _, r := range rs {
					fmt.Fprintf(c.stdout, "%s\t%s\n", r.Pattern, r.Action)
				}
				return err
			})},
		&cobra.Command{Use: "rm PATTERN", Short: "remove a rule", Args: cobra.ExactArgs(1),
			RunE: c.run(func(ctx context.Context, a *admin.Admin, args []string) error {
				return a.RemoveAccess(ctx, args[0])
			})},
	)
}

func (c *cli) mailboxCmd() *cobra.Command {
	var asJSON bool
	list := &cobra.Command{Use: "list ADDRESS", Short: "each mailbox of a user: name, messages, unseen, size in bytes", Args: cobra.ExactArgs(1),
		RunE: c.run(func(ctx context.Context, a *admin.Admin, args []string) error {
			mbs, err := a.MailboxList(ctx, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				type row struct {
					Name     string `json:"name"`
					Messages int    `json:"messages"`
					Unseen   int    `json:"unseen"`
					Size     int64  `json:"size"`
				}
				rows := []row{}
				for _, m := range mbs {
					rows = append(rows, row{m.Name, m.Messages, m.Unseen, m.Size})
				}
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			for _, m := range mbs {
				fmt.Fprintf(c.stdout, "%s\t%d\t%d\t%d\n", m.Name, m.Messages, m.Unseen, m.Size)
			}
			return nil
		})}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return group("mailbox", "inspect users' mailboxes", list)
}

func (c *cli) queueCmd() *cobra.Command {
	var listJSON, showJSON bool
	list := &cobra.Command{Use: "list", Short: "list queued messages: ID, age, size, sender, recipients (status), attempts, next attempt, last error",
		Args: cobra.NoArgs,
		RunE: c.run(func(ctx context.Context, a *admin.Admin, _ []string) error {
			q, err := a.QueueList(ctx)
			if err != nil {
				return err
			}
			if listJSON {
				return c.printJSON(q)
			}
			return admin.WriteQueueList(c.stdout, q, time.Now())
		})}
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON")
	show := &cobra.Command{Use: "show ID", Short: "show one queued message: its state, each recipient and the message header",
		Args: cobra.ExactArgs(1),
		RunE: c.run(func(ctx context.Context, a *admin.Admin, args []string) error {
			m, err := a.QueueShow(ctx, args[0])
			if err != nil {
				return err
			}
			if showJSON {
				return c.printJSON(m)
			}
			h, err := a.QueueHeader(ctx, m)
			if err != nil {
				return err
			}
			return admin.WriteQueueEntry(c.stdout, m, h, time.Now())
		})}
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON")
	return group("queue", "inspect and manage the outbound queue", list, show,
		&cobra.Command{Use: "flush", Short: "retry every queued message now", Args: cobra.NoArgs,
			RunE: c.run(func(ctx context.Context, a *admin.Admin, _ []string) error { return a.QueueFlush(ctx) })},
		&cobra.Command{Use: "retry ID", Short: "retry one message now", Args: cobra.ExactArgs(1),
			RunE: c.run(func(ctx context.Context, a *admin.Admin, args []string) error {
				return a.QueueRetry(ctx, args[0])
			})},
		&cobra.Command{Use: "rm ID", Short: "delete a queued message", Args: cobra.ExactArgs(1),
			RunE: c.run(func(ctx context.Context, a *admin.Admin, args []string) error {
				return a.QueueRemove(ctx, args[0])
			})},
	)
}

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
