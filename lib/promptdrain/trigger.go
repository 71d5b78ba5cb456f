// Package promptdrain owns prompt drains: a drain started by the intake
// right after it queued an event, so that an activity is fetched within
// seconds instead of at the next cron (once a day on Vercel's Hobby plan).
// The queue stays the source of truth and the cron the backstop.
//
// It has two halves:
//
//   - Trigger, in the intake: after an event was queued it sends one
//     request to our own /api/process_events?trigger=prompt with the cron
//     secret, waits only until that request is written (a Vercel Go
//     function freezes when its handler returns), never longer than
//     SendBudget, and sends at most one per instance every Interval.
//   - Drain, in /api/process_events: one prompt drain runs at a time (a
//     short Redis lease); a second one steps aside at once, leaving the
//     first a note to keep watching. The running one claims once the
//     oldest ready event has waited Settle (so that a create and the
//     update or delete right behind it are claimed, and coalesced,
//     together), and watches the queue for Interval + Settle, long enough
//     to claim every event whose trigger the per-instance bound held back.
package promptdrain

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stravahook/stravahook/lib/baseurl"
)

// Timing of prompt drains.
const (
	// Interval is the least time between two triggers of one instance.
	Interval = 2 * time.Second
	// SendBudget is the most the intake spends on a trigger.
	SendBudget = 250 * time.Millisecond
	// Settle is how long a prompt drain lets the oldest new event wait
	// before claiming: Strava often sends an update (a rename) or a delete
	// a moment after the create.
	Settle = time.Second
	// poll is how often a watching prompt drain claims again.
	poll = 250 * time.Millisecond
	// watch is how long after it started a prompt drain keeps watching the
	// queue: events queued during the Interval that followed its trigger
	// sent none of their own, and each needs Settle before it is claimed.
	watch = Interval + Settle + poll
	// answerWait bounds the wait for the drain's answer, read in the
	// background so that the drain's client does not go away before the
	// drain is done (longer than process_events' maxDuration of 60 s).
	answerWait = 70 * time.Second
	// devWait bounds how long the intake waits for its drain under
	// `vercel dev` (see UnderVercelDev).
	devWait = 20 * time.Second
)

// UnderVercelDev says r came through `vercel dev` (its request ids start
// with dev1::) to a plain-http base: there the intake must wait for the
// drain it starts. vercel dev stops a function's process as soon as its
// answer is sent, and the drain's process as soon as the drain's client
// goes away (its res "close" handler), so a drain nobody waits for never
// runs. On Vercel itself a Go function is not cancelled when its client
// leaves, and the base is https.
func UnderVercelDev(r *http.Request, base string) bool {
	return strings.HasPrefix(r.Header.Get("X-Vercel-Id"), "dev1::") && strings.HasPrefix(base, "http://")
}

// Path is where the trigger sends its request.
const Path = "/api/process_events?trigger=prompt"

// BypassHeader carries VERCEL_AUTOMATION_BYPASS_SECRET past Vercel's
// Deployment Protection.
const BypassHeader = "x-vercel-protection-bypass"

// TriggerConfig is what a Trigger needs from the operator.
type TriggerConfig struct {
	// Secret is CRON_SECRET; empty: no trigger (logged once).
	Secret string
	// Off is STRAVAHOOK_PROMPT_DRAIN=off.
	Off bool
	// BaseURL is where our /api/process_events lives: PUBLIC_URL, else
	// https:// + VERCEL_PROJECT_PRODUCTION_URL, else https:// + VERCEL_URL;
	// empty: the queued event's request's own Host tells (baseurl.OwnHost:
	// never X-Forwarded-*, a client must not choose where the secret goes).
	BaseURL string
	// BypassSecret is VERCEL_AUTOMATION_BYPASS_SECRET, sent as BypassHeader
	// when set.
	BypassSecret string
	// Client sends the request (default: a client without keep-alive: a
	// pooled connection may have died while the instance was frozen).
	// Preconnect works with the default client only.
	Client *http.Client
	// RootCAs verifies BaseURL's certificate (default: the system's roots);
	// for tests.
	RootCAs *x509.CertPool
	// Now is the clock of the per-instance bound (default time.Now).
	Now func() time.Time
}

// Trigger starts prompt drains from the intake. It is safe for concurrent
// use; one per instance.
type Trigger struct {
	cfg    TriggerConfig
	logger *slog.Logger
	last   atomic.Int64 // unix ns of the last trigger sent
	noted  sync.Once
	// devNoted logs once that the intake waits under vercel dev.
	devNoted sync.Once
	// early is the connection Preconnect opened, until a trigger takes it
	// or its release; nil when none.
	early     atomic.Pointer[earlyConn]
	lastEarly atomic.Int64 // unix ns of the last preconnection
	// dialTLS opens a TLS connection to the deployment; nil when Client
	// was given (then Preconnect does nothing).
	dialTLS func(ctx context.Context, network, addr string) (net.Conn, error)
}

// earlyConn is a connection to the deployment opened before it is needed.
type earlyConn struct {
	addr  string
	ready chan struct{} // closed once dialed
	conn  net.Conn      // nil when the dial failed
}

// close closes the connection once it is dialed, without waiting for that.
func (e *earlyConn) close() {
	go func() {
		<-e.ready
		if e.conn != nil {
			e.conn.Close()
		}
	}()
}

// preconnectBudget bounds the dial of a preconnection: the event's enqueue
// and the trigger's own SendBudget, within Strava's 2 s.
const preconnectBudget = 2 * time.Second

// NewTrigger returns the instance's Trigger.
func NewTrigger(cfg TriggerConfig, logger *slog.Logger) *Trigger {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	t := &Trigger{cfg: cfg, logger: logger}
	if t.cfg.Client == nil {
		dialer := &tls.Dialer{NetDialer: &net.Dialer{}, Config: &tls.Config{RootCAs: cfg.RootCAs}}
		t.dialTLS = dialer.DialContext
		t.cfg.Client = &http.Client{Transport: &http.Transport{
			Proxy:             http.ProxyFromEnvironment,
			DisableKeepAlives: true,
			ForceAttemptHTTP2: false,
			DialTLSContext:    t.dialDeployment,
		}}
	}
	return t
}

// Preconnect opens a connection to BaseURL (https) in the background, for
// the trigger that the event being received may send: the intake calls it
// as the event arrives, so that the TLS handshake with the deployment
// overlaps the event's enqueue instead of following it. The caller calls
// the returned release when it has answered: it closes the connection if no
// trigger took it, so that none outlives the invocation (a frozen instance
// would hold it while the other end gives up on it).
//
// It opens nothing when no trigger could be sent now (off, within Interval
// of the last trigger), within Interval of the last preconnection (a flood
// of POSTs that queue nothing must not become a flood of dials), without a
// configured https BaseURL, through a proxy (the transport dials that
// itself), or with a Client of the caller's.
func (t *Trigger) Preconnect() (release func()) {
	nothing := func() {}
	u, err := url.Parse(t.cfg.BaseURL)
	if t.cfg.Off || t.cfg.Secret == "" || t.dialTLS == nil || err != nil || u.Scheme != "https" || !t.slotFree(&t.last) {
		return nothing
	}
	if proxy, err := http.ProxyFromEnvironment(&http.Request{URL: u}); proxy != nil || err != nil {
		return nothing
	}
	if !t.takeSlot(&t.lastEarly) {
		return nothing
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	// The transport asks for the host in lower case.
	early := &earlyConn{addr: net.JoinHostPort(strings.ToLower(u.Hostname()), port), ready: make(chan struct{})}
	if !t.early.CompareAndSwap(nil, early) {
		return nothing
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), preconnectBudget)
		defer cancel()
		early.conn, _ = t.dialTLS(ctx, "tcp", early.addr) // a failure is the trigger's to report
		close(early.ready)
	}()
	return func() {
		if t.early.CompareAndSwap(early, nil) {
			early.close()
		}
	}
}

// dialDeployment is the transport's TLS dial: the first one to Preconnect's
// address takes that connection, waiting for it if it is still being
// opened; the others dial anew.
func (t *Trigger) dialDeployment(ctx context.Context, network, addr string) (net.Conn, error) {
	if early := t.early.Load(); early != nil && early.addr == addr && t.early.CompareAndSwap(early, nil) {
		select {
		case <-early.ready:
			if early.conn != nil {
				return early.conn, nil
			}
		case <-ctx.Done():
			early.close()
			return nil, ctx.Err()
		}
	}
	return t.dialTLS(ctx, network, addr)
}

// EventQueued is the intake's hook, called once an event was newly queued
// and before the answer to Strava: it starts a prompt drain unless one was
// started from this instance less than Interval ago. It returns once the
// request is written, or after SendBudget at most.
func (t *Trigger) EventQueued(r *http.Request) {
	if t.cfg.Off {
		return
	}
	if t.cfg.Secret == "" {
		t.noted.Do(func() {
			t.logger.Warn("prompt drains are off: CRON_SECRET is not set; queued events wait for the next drain (cron or `stravahook process`)")
		})
		return
	}
	if !t.takeSlot(&t.last) {
		return
	}
	base := t.cfg.BaseURL
	if base == "" {
		var err error
		if base, err = baseurl.OwnHost(r); err != nil {
			t.logger.Warn("prompt drain not started", "error", err.Error())
			return
		}
	}
	t.Send(base, UnderVercelDev(r, base))
}

// takeSlot sets slot (unix ns of its last use; 0: never) to now unless it
// was used less than Interval ago: the per-instance bound of triggers
// (t.last) and of preconnections (t.lastEarly).
func (t *Trigger) takeSlot(slot *atomic.Int64) bool {
	now, last := t.cfg.Now().UnixNano(), slot.Load()
	return !usedWithinInterval(now, last) && slot.CompareAndSwap(last, now)
}

// slotFree says whether takeSlot(slot) would succeed now.
func (t *Trigger) slotFree(slot *atomic.Int64) bool {
	return !usedWithinInterval(t.cfg.Now().UnixNano(), slot.Load())
}

func usedWithinInterval(now, last int64) bool {
	return last != 0 && now-last < int64(Interval)
}

// Send asks the deployment at base for a prompt drain: it returns once the
// request is written (or failed), SendBudget at most, and reads the answer
// in the background; with waitForDrain (vercel dev), once the drain has
// answered. A drain that ran out of time hands over with it.
func (t *Trigger) Send(base string, waitForDrain bool) {
	start := time.Now()
	// Not derived from the caller's request: the request must outlive the
	// handler that sends it.
	ctx, cancel := context.WithTimeout(context.Background(), answerWait)
	written := make(chan error, 1)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			select {
			case written <- info.Err:
			default:
			}
		},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+Path, http.NoBody)
	if err != nil {
		cancel()
		t.logger.Warn("prompt drain not started", "error", fmt.Sprintf("bad base URL %q: %v", base, err))
		return
	}
	req.Header.Set("Authorization", "Bearer "+t.cfg.Secret)
	if t.cfg.BypassSecret != "" {
		req.Header.Set(BypassHeader, t.cfg.BypassSecret)
	}
	req.Header.Set("User-Agent", "stravahook-prompt-drain")
	url := redact(base) + Path
	warnIfFailed := func(err error) {
		if err != nil {
			t.logger.Warn("prompt drain not started", "url", url, "error", err.Error())
		}
	}
	// finished gets Do's error: an answer (nil) before WroteRequest means
	// a transport that does not trace, or a very quick server.
	finished := make(chan error, 1)
	go func() {
		defer cancel()
		resp, err := t.cfg.Client.Do(req)
		finished <- err
		if err != nil {
			// After the request was written this is usually the instance
			// being frozen or stopped while the drain ran: not a failure
			// of the drain, which runs as its own invocation.
			t.logger.Debug("prompt drain answer not read", "error", err.Error())
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.logger.Warn("prompt drain refused", "status", resp.StatusCode, "url", url, "hint", hint(resp.StatusCode))
		}
	}()
	if waitForDrain {
		t.devNoted.Do(func() {
			t.logger.Info("under vercel dev the intake answers once its prompt drain has (vercel dev stops a function's process when its answer is sent)")
		})
		select {
		case err := <-finished:
			warnIfFailed(err)
		case <-time.After(devWait):
		}
		return
	}
	timer := time.NewTimer(SendBudget)
	defer timer.Stop()
	select {
	case err := <-written:
		warnIfFailed(err)
	case err := <-finished:
		warnIfFailed(err)
	case <-timer.C:
		t.logger.Warn("prompt drain request not written within its budget; it may not start",
			"url", url, "budget_ms", SendBudget.Milliseconds(), "waited_ms", time.Since(start).Milliseconds())
	}
}

func hint(status int) string {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return "CRON_SECRET differs between the functions, or Vercel Deployment Protection stopped it: set VERCEL_AUTOMATION_BYPASS_SECRET (Protection Bypass for Automation) or PUBLIC_URL to an unprotected domain"
	case http.StatusNotFound:
		return "the base URL is not this deployment; set PUBLIC_URL"
	}
	return ""
}

// redact keeps a URL's scheme and host only (a PUBLIC_URL could carry a
// secret path).
func redact(base string) string {
	scheme, rest, ok := strings.Cut(base, "://")
	if !ok {
		return "(invalid URL)"
	}
	host, _, _ := strings.Cut(rest, "/")
	return scheme + "://" + host
}
