package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/postern/postern/internal/app"
)

// engineCheckTimeout bounds the ping of one filter engine by `postern check`.
const engineCheckTimeout = 10 * time.Second

// withEngineCheck adds to `postern check`, after the usual checks, a ping of each configured filter engine
// (clamd, spamd, rspamd), one line each. An engine that does not answer is reported, not an error: serve starts
// without it too, and [antivirus]/[antispam] on_error decides what mail does meanwhile.
func (c *cli) withEngineCheck(check *cobra.Command) *cobra.Command {
	basic := check.RunE
	check.RunE = func(cmd *cobra.Command, args []string) error {
		if err := basic(cmd, args); err != nil {
			return err
		}
		cfg, err := c.loadConfig()
		if err != nil {
			return err
		}
		engines, err := app.FilterEngines(cfg)
		if err != nil {
			return err
		}
		for _, e := range engines {
			ctx, cancel := context.WithTimeout(cmd.Context(), engineCheckTimeout)
			err := e.Ping(ctx)
			cancel()
			if err != nil {
				fmt.Fprintf(c.stdout, "filter engine %s: does not answer (on_error decides what mail does): %s\n", e.Name(), oneLine(err))
				continue
			}
			fmt.Fprintf(c.stdout, "filter engine %s: answers\n", e.Name())
		}
		return nil
	}
	return check
}
