// Command coldstart measures how long a server takes from exec to its first
// 200 answer: it starts the command, polls a URL every millisecond with a
// fresh connection, records the elapsed time at the first 200, stops the
// server (SIGTERM, then SIGKILL), waits for the port to close, and repeats.
// It prints every sample and, last, one machine-readable line:
//
//	COLDSTART n=10 median_ms=12.3 min_ms=11.9 max_ms=15.0
//
// Usage: coldstart -n 10 -url http://127.0.0.1:PORT/path -- command args...
// The server's own output goes to this program's stderr.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"sync/atomic"
	"syscall"
	"time"
)

// running is the process group of the server being timed, so that a
// SIGINT/SIGTERM to this helper does not leave it behind (it runs in its own
// group, out of reach of a signal sent to ours).
var running atomic.Int64

func main() {
	n := flag.Int("n", 10, "number of cold starts")
	target := flag.String("url", "", "URL that answers 200 once the server is ready")
	timeout := flag.Duration("timeout", 30*time.Second, "give up on one start after this long")
	interval := flag.Duration("interval", time.Millisecond, "poll interval")
	flag.Parse()
	if *target == "" || flag.NArg() == 0 || *n < 1 {
		fmt.Fprintln(os.Stderr, "usage: coldstart [-n 10] -url URL -- command args...")
		os.Exit(2)
	}
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		fmt.Fprintf(os.Stderr, "coldstart: bad -url %q\n", *target)
		os.Exit(2)
	}
	if portOpen(u.Host) {
		fmt.Fprintf(os.Stderr, "coldstart: something already listens on %s; stop it first\n", u.Host)
		os.Exit(1)
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-signals
		if pgid := running.Load(); pgid != 0 {
			_ = syscall.Kill(-int(pgid), syscall.SIGKILL)
		}
		fmt.Fprintf(os.Stderr, "coldstart: %v\n", sig)
		os.Exit(1)
	}()

	samples := make([]time.Duration, 0, *n)
	for i := 0; i < *n; i++ {
		d, err := once(flag.Args(), *target, u.Host, *timeout, *interval)
		if err != nil {
			fmt.Fprintf(os.Stderr, "coldstart: run %d: %v\n", i+1, err)
			os.Exit(1)
		}
		fmt.Printf("run %d: %.1f ms\n", i+1, ms(d))
		samples = append(samples, d)
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	fmt.Printf("COLDSTART n=%d median_ms=%.1f min_ms=%.1f max_ms=%.1f\n",
		len(samples), ms(median(samples)), ms(samples[0]), ms(samples[len(samples)-1]))
}

func once(argv []string, target, hostport string, timeout, interval time.Duration) (time.Duration, error) {
	client := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", argv[0], err)
	}
	running.Store(int64(cmd.Process.Pid))
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer stop(cmd, exited, hostport)

	deadline := start.Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err // let stop see it too
			return 0, fmt.Errorf("server exited before answering 200: %v", err)
		default:
		}
		resp, err := client.Get(target)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		time.Sleep(interval)
	}
	return 0, fmt.Errorf("no 200 from %s within %s", target, timeout)
}

// stop ends the server's process group and waits until its port is closed,
// so the next start is really cold and finds the port free.
func stop(cmd *exec.Cmd, exited chan error, hostport string) {
	pgid := -cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-exited
	}
	running.Store(0)
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && portOpen(hostport); {
		time.Sleep(10 * time.Millisecond)
	}
}

func portOpen(hostport string) bool {
	c, err := net.DialTimeout("tcp", hostport, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func median(sorted []time.Duration) time.Duration {
	m := len(sorted) / 2
	if len(sorted)%2 == 1 {
		return sorted[m]
	}
	return (sorted[m-1] + sorted[m]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
