package main

import (
	"bytes"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/logtest"
)

func TestAGroupListsItsCommands(t *testing.T) {
	c := newCLI(t)
	code, out, stderr := c.run("queue")
	if code != 2 || !strings.Contains(stderr, "queue status") || !strings.Contains(stderr, "queue redrive") || out != "" {
		t.Fatalf("queue = %d %q %q", code, out, stderr)
	}
	for _, help := range []string{"-h", "--help", "help"} {
		code, out, _ = c.run("athlete", help)
		if code != 0 || !strings.Contains(out, "athlete add") || !strings.Contains(out, "athlete remove ID") || strings.Contains(out, "queue status") {
			t.Fatalf("athlete %s = %d %q", help, code, out)
		}
	}
}

func TestAnUnknownCommandSuggestsTheClosest(t *testing.T) {
	c := newCLI(t)
	for typed, want := range map[string]string{
		"queue stats":   `unknown command "queue stats"; did you mean "queue status"?`,
		"qeue status":   `unknown command "qeue status"; did you mean "queue status"?`,
		"athlete lst":   `did you mean "athlete list"?`,
		"servr":         `unknown command "servr"; did you mean "serve"?`,
		"vesion":        `did you mean "version"?`,
		"activites":     `did you mean "activities"?`,
		"notarealthing": `unknown command "notarealthing"` + "\n",
	} {
		code, _, stderr := c.run(strings.Fields(typed)...)
		if code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("%s = %d %q, want %q", typed, code, stderr, want)
		}
	}
}

func TestVersion(t *testing.T) {
	c := newCLI(t)
	code, out, _ := c.run("version")
	if code != 0 || !strings.HasPrefix(out, "stravahook ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version = %d %q", code, out)
	}
	info := &debug.BuildInfo{Main: debug.Module{Path: "github.com/stravahook/stravahook", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-01T01:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	if got := versionLine(info, true); !strings.HasPrefix(got, "stravahook v1.2.3 revision 0123abcd (2026-12-01T01:00:00Z, modified) go1.") {
		t.Fatalf("versionLine = %q", got)
	}
	if got := versionLine(&debug.BuildInfo{}, true); !strings.Contains(got, "(devel) revision unknown") {
		t.Fatalf("without VCS: %q", got)
	}
}

func TestProgressOnlyOnATerminal(t *testing.T) {
	var piped bytes.Buffer
	stop := showProgress(&piped, false, time.Millisecond, func() string { return "draining" })
	time.Sleep(5 * time.Millisecond)
	stop()
	if piped.Len() != 0 {
		t.Fatalf("piped: %q", piped.String())
	}

	var term logtest.Buffer
	drawn := make(chan struct{})
	var once sync.Once
	stop = showProgress(&term, true, time.Millisecond, func() string {
		once.Do(func() { close(drawn) })
		return "draining… 3 ready"
	})
	select {
	case <-drawn:
	case <-time.After(5 * time.Second):
		t.Fatal("no progress drawn")
	}
	stop()
	stop() // twice is harmless
	out := term.String()
	if !strings.Contains(out, "\r\033[Kdraining… 3 ready (") || !strings.HasSuffix(out, "\r\033[K") {
		t.Fatalf("terminal: %q", out)
	}

	// The commands' stderr in tests is a buffer: no progress there.
	c := newCLI(t)
	code, _, stderr := c.run("queue", "redrive")
	if code != 0 || strings.Contains(stderr, "\r") {
		t.Fatalf("redrive = %d %q", code, stderr)
	}
}
