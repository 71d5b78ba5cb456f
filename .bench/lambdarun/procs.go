//go:build linux

package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// measured is one running process under test: a function binary behind the
// runtime API stand-in, or the floor process.
type measured interface {
	// invoke hands it one request and returns the time to its answer.
	invoke(payload []byte) (time.Duration, []byte, error)
	// stop kills it and returns its peak RSS and CPU time.
	stop() usage
}

// children remembers every process the kit started, so that an interrupt
// kills them all (each also gets SIGKILL if the kit dies: Pdeathsig).
type children struct {
	mu    sync.Mutex
	procs []*os.Process
}

func (c *children) add(p *os.Process) {
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
}

func (c *children) killAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		_ = p.Kill()
	}
}

// process is the part common to both kinds: the child and its exit.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

func (p *process) start(procs *children) (time.Time, error) {
	p.exited = make(chan struct{})
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := p.cmd.Start(); err != nil {
		return t0, err
	}
	procs.add(p.cmd.Process)
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	return t0, nil
}

// usage is a stopped process's peak RSS (KiB) and CPU time (user + system).
type usage struct {
	maxRSSKiB int64
	cpu       time.Duration
}

// kill reads the peak RSS (VmHWM) first: getrusage's ru_maxrss would also
// count the kit's own memory, which the child shared until its exec.
func (p *process) kill() usage {
	var u usage
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				u.maxRSSKiB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
		}
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	u.cpu = p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
	return u
}

func (p *process) exitError() error {
	logText, _ := os.ReadFile(p.log)
	return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", filepath.Base(p.cmd.Path), p.cmd.ProcessState, p.log, tail(logText, 5))
}

// function is a Vercel function's bootstrap binary, run the way Lambda runs
// it: AWS_LAMBDA_RUNTIME_API points at a stand-in of its own.
type function struct {
	process
	api     *runtimeAPI
	timeout time.Duration
}

// startFunction execs bin with first as the pending invocation and returns
// the cold start: exec → the first answer has arrived at the stand-in.
func startFunction(bin string, env []string, logFile string, first []byte, timeout time.Duration, procs *children) (*function, time.Duration, []byte, error) {
	api, err := startRuntimeAPI()
	if err != nil {
		return nil, 0, nil, err
	}
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		api.close()
		return nil, 0, nil, err
	}
	defer out.Close() // the child holds its own copy
	cmd := exec.Command(bin)
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = append(env, "AWS_LAMBDA_RUNTIME_API="+api.addr, "LAMBDA_TASK_ROOT="+cmd.Dir)
	cmd.Stdout, cmd.Stderr = out, out
	f := &function{process: process{cmd: cmd, log: logFile}, api: api, timeout: timeout}
	inv := newInvocation(first)
	api.enqueue(inv)
	t0, err := f.start(procs)
	if err != nil {
		api.close()
		return nil, 0, nil, fmt.Errorf("exec %s: %w", bin, err)
	}
	res, err := f.wait(inv)
	if err != nil {
		f.stop()
		return nil, 0, nil, err
	}
	return f, res.at.Sub(t0), res.body, nil
}

func newInvocation(payload []byte) *invocation {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return &invocation{id: hex.EncodeToString(id), payload: payload, deadline: 10 * time.Second, done: make(chan invocationResult, 1)}
}

func (f *function) wait(inv *invocation) (invocationResult, error) {
	timer := time.NewTimer(f.timeout)
	defer timer.Stop()
	select {
	case res := <-inv.done:
		return res, res.err
	case <-f.exited:
		if err := f.api.initError(); err != nil {
			return invocationResult{}, err
		}
		return invocationResult{}, f.exitError()
	case <-timer.C:
		return invocationResult{}, fmt.Errorf("no answer within %s (see %s)", f.timeout, f.log)
	}
}

func (f *function) invoke(payload []byte) (time.Duration, []byte, error) {
	inv := newInvocation(payload)
	f.api.enqueue(inv)
	res, err := f.wait(inv)
	if err != nil {
		return 0, nil, err
	}
	return res.at.Sub(f.api.sentAt(inv)), res.body, nil
}

func (f *function) stop() usage {
	u := f.kill()
	f.api.close()
	return u
}

// floor is .bench/floor: one TLS connection, one command, then one PING per
// line on its stdin.
type floor struct {
	process
	stdin   io.WriteCloser
	lines   chan string
	timeout time.Duration
}

// startFloor returns the cold start: exec → "ready" (its PONG is back).
func startFloor(bin string, env []string, logFile string, timeout time.Duration, procs *children) (*floor, time.Duration, error) {
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, 0, err
	}
	defer out.Close()
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Stderr = out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, err
	}
	fl := &floor{process: process{cmd: cmd, log: logFile}, stdin: stdin, lines: make(chan string, 1), timeout: timeout}
	t0, err := fl.start(procs)
	if err != nil {
		return nil, 0, fmt.Errorf("exec %s: %w", bin, err)
	}
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			fl.lines <- s.Text()
		}
		close(fl.lines)
	}()
	if err := fl.expect("ready"); err != nil {
		fl.stop()
		return nil, 0, err
	}
	return fl, time.Since(t0), nil
}

func (fl *floor) expect(want string) error {
	timer := time.NewTimer(fl.timeout)
	defer timer.Stop()
	select {
	case line, ok := <-fl.lines:
		if !ok {
			<-fl.exited
			return fl.exitError()
		}
		if line != want {
			return fmt.Errorf("floor said %q, want %q", line, want)
		}
		return nil
	case <-timer.C:
		return errors.New("floor: no answer within " + fl.timeout.String())
	}
}

func (fl *floor) invoke([]byte) (time.Duration, []byte, error) {
	t0 := time.Now()
	if _, err := fl.stdin.Write([]byte("\n")); err != nil {
		return 0, nil, err
	}
	if err := fl.expect("pong"); err != nil {
		return 0, nil, err
	}
	return time.Since(t0), nil, nil
}

func (fl *floor) stop() usage {
	fl.stdin.Close()
	return fl.kill()
}
