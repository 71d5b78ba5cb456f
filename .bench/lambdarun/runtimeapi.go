//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// runtimeAPI is a stand-in for the AWS Lambda Runtime API, as much of it as
// aws-lambda-go (which go-bridge starts) uses: the function GETs
// /2018-06-01/runtime/invocation/next, which blocks until there is an
// invocation, and POSTs its answer to .../invocation/<id>/response (or
// .../error). One runtimeAPI serves one function process.
type runtimeAPI struct {
	srv  *http.Server
	addr string
	next chan *invocation // invocations waiting for the function's GET /next

	mu      sync.Mutex
	pending map[string]*invocation
	initErr string
	closed  chan struct{}
}

// invocation is one event handed to the function and its answer.
type invocation struct {
	id       string
	payload  []byte
	deadline time.Duration

	sent time.Time // when the stand-in started writing the event to the function
	done chan invocationResult
}

type invocationResult struct {
	at   time.Time // when the function's whole answer had arrived
	body []byte
	err  error
}

func startRuntimeAPI() (*runtimeAPI, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("runtime API stand-in: %w", err)
	}
	api := &runtimeAPI{
		addr:    ln.Addr().String(),
		next:    make(chan *invocation, 1),
		pending: map[string]*invocation{},
		closed:  make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", api.serveNext)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", api.serveResult)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", api.serveResult)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", api.serveInitError)
	api.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = api.srv.Serve(ln) }()
	return api, nil
}

// enqueue makes inv the answer to the function's next GET /next.
func (api *runtimeAPI) enqueue(inv *invocation) {
	api.mu.Lock()
	api.pending[inv.id] = inv
	api.mu.Unlock()
	api.next <- inv
}

func (api *runtimeAPI) serveNext(w http.ResponseWriter, r *http.Request) {
	var inv *invocation
	select {
	case inv = <-api.next:
	case <-r.Context().Done():
		return
	case <-api.closed:
		http.Error(w, "shutting down", http.StatusGone)
		return
	}
	h := w.Header()
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(inv.deadline).UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:bench")
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(inv.payload)))
	api.mu.Lock()
	inv.sent = time.Now()
	api.mu.Unlock()
	_, _ = w.Write(inv.payload)
}

// sentAt is when inv was handed to the function.
func (api *runtimeAPI) sentAt(inv *invocation) time.Time {
	api.mu.Lock()
	defer api.mu.Unlock()
	return inv.sent
}

func (api *runtimeAPI) serveResult(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	at := time.Now()
	id := r.PathValue("id")
	api.mu.Lock()
	inv := api.pending[id]
	delete(api.pending, id)
	api.mu.Unlock()
	if inv == nil {
		http.Error(w, "unknown request id", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	if err == nil && strings.HasSuffix(r.URL.Path, "/error") {
		err = fmt.Errorf("the function reported an error: %s", body)
	}
	inv.done <- invocationResult{at: at, body: body, err: err}
}

func (api *runtimeAPI) serveInitError(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	api.mu.Lock()
	api.initErr = string(body)
	api.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (api *runtimeAPI) initError() error {
	api.mu.Lock()
	defer api.mu.Unlock()
	if api.initErr == "" {
		return nil
	}
	return errors.New("the function reported an init error: " + api.initErr)
}

func (api *runtimeAPI) close() {
	close(api.closed)
	_ = api.srv.Close()
}
