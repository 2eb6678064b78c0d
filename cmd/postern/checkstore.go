package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/postern/postern/internal/admin"
)

// withStoreCheck adds --store (and --repair, --quick, --json) to `postern check`: after the usual checks, the
// store's consistency (admin.CheckStore). It runs beside a live server: nothing is changed without --repair, and
// --repair only deletes blob files nothing references that are older than --orphan-age.
func (c *cli) withStoreCheck(check *cobra.Command) *cobra.Command {
	var o admin.CheckOptions
	var storeFlag, asJSON bool
	check.Flags().BoolVar(&storeFlag, "store", false, "also check the store: database integrity, blobs, mailbox counters, quota usage, queue")
	check.Flags().BoolVar(&o.Repair, "repair", false, "with --store: delete orphan blob files older than --orphan-age")
	check.Flags().BoolVar(&o.Quick, "quick", false, "with --store: the database's quick_check instead of the full integrity_check")
	check.Flags().DurationVar(&o.OrphanAge, "orphan-age", admin.DefaultOrphanAge, "with --store --repair: age from which an orphan blob is removed")
	check.Flags().BoolVar(&asJSON, "json", false, "with --store: print the report as JSON")
	basic := check.RunE
	check.RunE = func(cmd *cobra.Command, args []string) error {
		if !storeFlag {
			if o.Repair || o.Quick || asJSON {
				return fmt.Errorf("--repair, --quick and --json need --store")
			}
			return basic(cmd, args)
		}
		if !asJSON { // the JSON report stands alone on stdout
			if err := basic(cmd, args); err != nil {
				return err
			}
		}
		return c.withAdmin(func(ctx context.Context, a *admin.Admin) error {
			r, err := a.CheckStore(ctx, o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(c.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				c.printCheckReport(r, o)
			}
			if !r.Clean() {
				return fmt.Errorf("store: %d problem(s) found", len(r.Problems))
			}
			return nil
		})
	}
	return check
}

func (c *cli) printCheckReport(r *admin.CheckReport, o admin.CheckOptions) {
	kinds := make([]string, 0, len(r.Counts))
	for k := range r.Counts {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s", r.Counts[k], k))
	}
	fmt.Fprintf(c.stdout, "store: checked %s\n", strings.Join(parts, ", "))
	if len(r.Orphans) > 0 {
		var size int64
		old := 0
		for _, or := range r.Orphans {
			size += or.Size
			if or.Old {
				old++
			}
		}
		fmt.Fprintf(c.stdout, "store: %d orphan blob file(s), %d bytes; %d older than %s", len(r.Orphans), size, old, o.OrphanAge)
		switch {
		case o.Repair:
			fmt.Fprintf(c.stdout, ", %d removed\n", r.Removed)
		case old > 0:
			fmt.Fprintln(c.stdout, " (postern check --store --repair removes those)")
		default:
			fmt.Fprintln(c.stdout, " (young ones may be deliveries in flight)")
		}
	}
	for _, p := range r.Problems {
		fmt.Fprintf(c.stdout, "store: PROBLEM %s: %s\n", p.Check, p.Detail)
	}
	if r.Clean() {
		fmt.Fprintln(c.stdout, "store: clean")
	}
}
