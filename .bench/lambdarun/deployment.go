//go:build linux

package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// deployment stands in for the function's own deployment, which the
// intake calls after queuing an event (a prompt drain: POST
// /api/process_events?trigger=prompt, lib/promptdrain). Each column's
// processes get PUBLIC_URL https://127.0.0.1:PORT/<column>, so the
// requests are counted per column; they are answered at once, and no drain
// runs.
type deployment struct {
	srv *http.Server
	url string

	mu       sync.Mutex
	requests map[string]int // by column
}

func startDeployment(certFile, keyFile string) (*deployment, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("deployment stand-in: %w", err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		return nil, fmt.Errorf("deployment stand-in: %w", err)
	}
	d := &deployment{url: "https://" + ln.Addr().String(), requests: map[string]int{}}
	d.srv = &http.Server{Handler: http.HandlerFunc(d.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = d.srv.Serve(ln) }()
	return d, nil
}

func (d *deployment) serve(w http.ResponseWriter, r *http.Request) {
	column, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if r.Method != http.MethodPost || rest != "api/process_events" {
		column = "unexpected " + r.Method + " " + r.URL.Path
	}
	d.mu.Lock()
	d.requests[column]++
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"stand_in":true}`))
}

// count returns the requests so far for column.
func (d *deployment) count(column string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests[column]
}

// unexpected lists requests that were not a prompt drain's.
func (d *deployment) unexpected() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for k, n := range d.requests {
		if strings.HasPrefix(k, "unexpected ") {
			out = append(out, fmt.Sprintf("%s ×%d", strings.TrimPrefix(k, "unexpected "), n))
		}
	}
	return out
}

func (d *deployment) close() { _ = d.srv.Close() }
