package main

import (
	"context"
	"errors"
	"flag"
)

func processCommand() command {
	return command{
		path:    "process",
		summary: "one drain of the queue, the same code as /api/process_events; prints its JSON summary",
		flags: func(fs *flag.FlagSet) func(context.Context, env, []string) error {
			fs.Duration("budget", 8e9, "how long the drain may claim new events")
			return func(ctx context.Context, e env, args []string) error {
				return errors.New("not implemented yet")
			}
		},
	}
}
