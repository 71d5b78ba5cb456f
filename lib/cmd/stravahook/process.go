package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/processor"
)

func processCommand() command {
	return command{
		path:    "process",
		summary: "one drain of the queue, the same code as /api/process_events; prints its JSON summary",
		flags: func(fs *flag.FlagSet) action {
			budget := fs.Duration("budget", processor.DefaultBudget, "how long the drain may claim and start work")
			return func(ctx context.Context, e env, args []string) error {
				if *budget <= 0 {
					return &usageError{msg: "-budget must be positive, e.g. 8s"}
				}
				return withApp(ctx, e, func(a *app.App) error {
					stop := startProgress(e, func() string {
						st, err := a.Queue.Stats(ctx)
						if err != nil {
							return "draining…"
						}
						return fmt.Sprintf("draining… %d ready, %d leased, %d delayed", st.Ready, st.Leased, st.Delayed)
					})
					sum, err := a.Drain(ctx, *budget, app.TriggerCLI)
					stop()
					if err != nil {
						return err
					}
					return json.NewEncoder(e.stdout).Encode(sum)
				})
			}
		},
	}
}
