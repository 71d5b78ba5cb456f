package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// unknownCommand answers words that name no command: a group's list when
// the first word is a group (`stravahook queue`, `stravahook queue -h`),
// else the closest command.
func unknownCommand(args []string, cmds []command, stdout, stderr io.Writer) error {
	group := args[0]
	members := groupCommands(group, cmds)
	if len(members) > 0 {
		if len(args) > 1 && (args[1] == "-h" || args[1] == "--help" || args[1] == "help") {
			printGroup(stdout, group, members)
			return errHelpShown
		}
		printGroup(stderr, group, members)
		if len(args) == 1 || strings.HasPrefix(args[1], "-") {
			return &usageError{msg: "which " + group + " command?", usage: "stravahook " + group + " <command> [flags]"}
		}
	}
	asked, candidates := args[0], cmds
	if len(members) > 0 {
		asked, candidates = args[0]+" "+args[1], members
	}
	best := closest(args, candidates)
	if strings.Contains(best, " ") && len(args) > 1 {
		asked = args[0] + " " + args[1]
	}
	msg := fmt.Sprintf("unknown command %q", asked)
	if best != "" {
		msg += fmt.Sprintf("; did you mean %q?", best)
	}
	return &usageError{msg: msg, usage: "stravahook <command> [flags]; stravahook -h lists the commands"}
}

// groupCommands are the commands whose first word is group, when they
// have a second one.
func groupCommands(group string, cmds []command) []command {
	var out []command
	for _, c := range cmds {
		if first, _, ok := strings.Cut(c.path, " "); ok && first == group {
			out = append(out, c)
		}
	}
	return out
}

func printGroup(w io.Writer, group string, members []command) {
	fmt.Fprintf(w, "usage: stravahook %s <command> [flags]   (stravahook %s <command> -h for its flags)\n\ncommands:\n", group, group)
	writeCommandList(w, members)
}

func writeCommandList(w io.Writer, cmds []command) {
	for _, c := range cmds {
		name := c.path
		if c.args != "" {
			name += " " + c.args
		}
		fmt.Fprintf(w, "  %-28s %s\n", name, c.summary)
	}
}

// closest is the command nearest to what was typed, by edit distance
// within about a third of its length: among the group's commands when the
// first word names a group, else among every two-word command, else among
// the groups and one-word commands.
func closest(args []string, cmds []command) string {
	nearest := func(typed string, candidates []string) string {
		best, bestDist := "", 1<<30
		for _, c := range candidates {
			if d := editDistance(typed, c); d < bestDist && d <= max(2, len(c)/3) {
				best, bestDist = c, d
			}
		}
		return best
	}
	var paths, firsts []string
	for _, c := range cmds {
		first, _, twoWords := strings.Cut(c.path, " ")
		if twoWords {
			paths = append(paths, c.path)
		}
		if len(firsts) == 0 || firsts[len(firsts)-1] != first {
			firsts = append(firsts, first)
		}
	}
	if len(args) >= 2 && !strings.HasPrefix(args[1], "-") {
		if best := nearest(args[0]+" "+args[1], paths); best != "" {
			return best
		}
	}
	return nearest(args[0], firsts)
}

// editDistance is Levenshtein's distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func versionCommand() command {
	return command{
		path:    "version",
		summary: "the module version and VCS revision this binary was built from",
		run: func(ctx context.Context, e env, args []string) error {
			fmt.Fprintln(e.stdout, versionLine(debug.ReadBuildInfo()))
			return nil
		},
	}
}

// versionLine reads like "stravahook (devel) revision 0123abc (2026-12-01T01:29:28Z, modified) go1.26.8 linux/amd64".
func versionLine(info *debug.BuildInfo, ok bool) string {
	platform := runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	if !ok {
		return "stravahook: no build information " + platform
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	rev := "revision unknown (built without VCS information)"
	if r := settings["vcs.revision"]; r != "" {
		var notes []string
		if t := settings["vcs.time"]; t != "" {
			notes = append(notes, t)
		}
		if settings["vcs.modified"] == "true" {
			notes = append(notes, "modified")
		}
		rev = "revision " + r
		if len(notes) > 0 {
			rev += " (" + strings.Join(notes, ", ") + ")"
		}
	}
	return fmt.Sprintf("stravahook %s %s %s", version, rev, platform)
}
