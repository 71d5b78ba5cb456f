// Command stravahook runs stravahook outside Vercel and manages it: serve
// every route locally, drain the queue, manage the Strava subscription and
// athletes, and look at the queue and the kept activities. Each command
// reads the same environment variables as the Vercel functions (README.md).
//
// Exit status: 0 success, 1 failure, 2 bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError is bad usage: exit status 2 with the command's usage line.
type usageError struct {
	msg   string
	usage string
}

func (e *usageError) Error() string { return e.msg }

// errHelpShown means -h was asked for and answered.
var errHelpShown = errors.New("help shown")

func exitCode(err error, stderr io.Writer) int {
	var usage *usageError
	switch {
	case err == nil, errors.Is(err, errHelpShown):
		return 0
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "stravahook: %s\nusage: %s\n", usage.msg, usage.usage)
		return 2
	default:
		fmt.Fprintf(stderr, "stravahook: %s\n", oneLine(err.Error()))
		return 1
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// env is what every command gets besides its arguments.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

// command is one CLI command; path is its words ("queue status").
type command struct {
	path    string
	args    string // usage after the flags, e.g. "ID"; "": the command takes no positional arguments
	summary string
	details func(io.Writer) // more for -h, after the summary
	// flags defines the command's flags on fs and returns the action that
	// reads them; run is the action of a command without flags.
	flags func(fs *flag.FlagSet) action
	run   action
}

type action = func(ctx context.Context, e env, args []string) error

func commands() []command {
	cmds := []command{
		serveCommand(), processCommand(),
		queueStatusCommand(), queueRedriveCommand(),
		subscriptionCreateCommand(), subscriptionViewCommand(), subscriptionDeleteCommand(),
		athleteAddCommand(), athleteListCommand(), athleteRemoveCommand(),
		activitiesListCommand(), triggerCommand(), versionCommand(),
	}
	cmds = append(cmds, notifyCommands()...)
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].path < cmds[j].path })
	return cmds
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := stdout
		if len(args) == 0 {
			w = stderr
		}
		printOverview(w, cmds)
		if len(args) == 0 {
			return &usageError{msg: "no command given", usage: "stravahook <command> [flags]"}
		}
		return errHelpShown
	}
	// The longest command path matching the leading words wins.
	var found *command
	words := 0
	for i := range cmds {
		parts := strings.Fields(cmds[i].path)
		if len(parts) <= len(args) && strings.Join(args[:len(parts)], " ") == cmds[i].path && len(parts) > words {
			found, words = &cmds[i], len(parts)
		}
	}
	if found == nil {
		return unknownCommand(args, cmds, stdout, stderr)
	}
	usage := "stravahook " + found.path + " [flags]"
	if found.args != "" {
		usage += " " + found.args
	}
	fs := flag.NewFlagSet("stravahook "+found.path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	action := found.run
	if found.flags != nil {
		action = found.flags(fs)
	}
	positional, err := parseInterspersed(fs, args[words:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "%s\n\n%s\n", usage, found.summary)
			if found.details != nil {
				found.details(stdout)
			}
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return errHelpShown
		}
		return &usageError{msg: err.Error(), usage: usage}
	}
	if found.args == "" && len(positional) > 0 {
		return &usageError{msg: fmt.Sprintf("unexpected argument %q", positional[0]), usage: usage}
	}
	err = action(ctx, e, positional)
	var u *usageError
	if errors.As(err, &u) && u.usage == "" {
		u.usage = usage
	}
	return err
}

func printOverview(w io.Writer, cmds []command) {
	fmt.Fprintln(w, "stravahook: Strava webhooks, queued in Redis and processed into kept activities.")
	fmt.Fprintln(w, "\nusage: stravahook <command> [flags]   (stravahook <command> -h for its flags)")
	fmt.Fprintln(w, "\ncommands:")
	writeCommandList(w, cmds)
	fmt.Fprintln(w, "\nConfiguration comes from the environment: REDIS_URL (or KV_URL), STRAVA_CLIENT_ID,")
	fmt.Fprintln(w, "STRAVA_CLIENT_SECRET, STRAVA_VERIFY_TOKEN, CRON_SECRET, STRAVA_BASE_URL, … (see README.md).")
}

// parseInterspersed parses flags before and after positional arguments
// (`trigger create -athlete 7` as well as `trigger -athlete 7 create`);
// after "--" everything is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}
