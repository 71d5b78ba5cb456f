package promptdrain_test

import (
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/clocktest"
	"github.com/stravahook/stravahook/lib/promptdrain"
)

// deployment is an https stand-in for our own deployment that counts the
// connections it accepted and the prompt-drain requests it got.
type deployment struct {
	srv      *httptest.Server
	mu       sync.Mutex
	conns    int
	accepted chan struct{} // one value per connection
	closed   chan struct{} // one value per connection closed
	requests chan int      // the connection count when a request arrived
}

func newDeployment(t *testing.T) *deployment {
	d := &deployment{accepted: make(chan struct{}, 64), closed: make(chan struct{}, 64), requests: make(chan int, 8)}
	d.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		n := d.conns
		d.mu.Unlock()
		d.requests <- n
	}))
	d.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			d.mu.Lock()
			d.conns++
			d.mu.Unlock()
			d.accepted <- struct{}{}
		case http.StateClosed:
			d.closed <- struct{}{}
		}
	}
	d.srv.StartTLS()
	t.Cleanup(d.srv.Close)
	return d
}

func (d *deployment) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(d.srv.Certificate())
	return pool
}

func wait[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10 s", what)
		panic("unreachable")
	}
}

func TestPreconnectedConnectionCarriesTheTrigger(t *testing.T) {
	d := newDeployment(t)
	clock := clocktest.New(time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC))
	trig := promptdrain.NewTrigger(promptdrain.TriggerConfig{Secret: "s", BaseURL: d.srv.URL, RootCAs: d.roots(), Now: clock.Now}, nil)
	release := trig.Preconnect()
	wait(t, d.accepted, "preconnection")
	trig.EventQueued(event("x"))
	release()
	if n := wait(t, d.requests, "prompt-drain request"); n != 1 {
		t.Fatalf("the trigger arrived with %d connections opened, want 1 (the preconnected one)", n)
	}
	// The next event's trigger, with no preconnection, dials its own.
	clock.Advance(promptdrain.Interval)
	trig.EventQueued(event("x"))
	if n := wait(t, d.requests, "second prompt-drain request"); n != 2 {
		t.Fatalf("the second trigger arrived with %d connections opened, want 2", n)
	}
}

// An event that queues nothing sends no trigger: its preconnection is
// closed when the intake has answered, not kept for a later event (the
// instance may be frozen meanwhile, and the other end give up on it).
func TestUntakenPreconnectionIsClosedOnRelease(t *testing.T) {
	d := newDeployment(t)
	trig := promptdrain.NewTrigger(promptdrain.TriggerConfig{Secret: "s", BaseURL: d.srv.URL, RootCAs: d.roots()}, nil)
	release := trig.Preconnect()
	wait(t, d.accepted, "preconnection")
	release()
	wait(t, d.closed, "close of the untaken preconnection")
}

// A flood of POSTs that queue nothing (duplicates, forgeries) opens at
// most one preconnection per Interval.
func TestPreconnectionsAreAtMostOnePerInterval(t *testing.T) {
	d := newDeployment(t)
	clock := clocktest.New(time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC))
	trig := promptdrain.NewTrigger(promptdrain.TriggerConfig{Secret: "s", BaseURL: d.srv.URL, RootCAs: d.roots(), Now: clock.Now}, nil)
	trig.Preconnect()()
	wait(t, d.accepted, "preconnection")
	for range 50 {
		trig.Preconnect()()
	}
	// The trigger's own dial comes after every one the flood might have
	// started: had any been, the count would be past 2 when it arrives.
	trig.EventQueued(event("x"))
	if n := wait(t, d.requests, "prompt-drain request"); n != 2 {
		t.Fatalf("the trigger arrived with %d connections opened, want 2 (the first preconnection, its own)", n)
	}
}
