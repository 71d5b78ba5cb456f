// Command timely measures prompt drains (issue #13): how soon after Strava's
// POST an activity is kept when nothing but the intake starts drains (no
// cron, no `stravahook process`), and what the trigger costs the intake's
// answer. It is a measuring kit, not part of the product.
//
//	go run ./.bench/timely                       # serve: 50 creates 200 ms apart, then the answer times
//	go run ./.bench/timely -server vercel-dev -n 10 -answers=false
//	go run ./.bench/timely -notify               # also POST → verified notification
//
// Everything runs on 127.0.0.1: a Strava double (lib/strava/stravatest)
// answering after -strava-latency, the server under test, and a Redis
// (-redis, keys under a fresh prefix, removed at the end).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/rueidis"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/notify"
	"github.com/stravahook/stravahook/lib/rdb"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

const (
	clientID     = "5"
	clientSecret = "bench-client-secret"
	cronSecret   = "bench-cron-secret-0123456789"
	verifyToken  = "bench-verify"
)

type options struct {
	server        string
	n             int
	gap           time.Duration
	stravaLatency time.Duration
	redisURL      string
	port          int
	vercel        string
	answers       bool
	answerN       int
	notify        bool
	keepLogs      string
}

func main() {
	var o options
	flag.StringVar(&o.server, "server", "serve", "serve or vercel-dev: what runs the routes for the end-to-end run (\"\": skip it)")
	flag.IntVar(&o.n, "n", 50, "create events in the end-to-end run")
	flag.DurationVar(&o.gap, "gap", 200*time.Millisecond, "time between two POSTs")
	flag.DurationVar(&o.stravaLatency, "strava-latency", 50*time.Millisecond, "how long the Strava double takes to answer")
	flag.StringVar(&o.redisURL, "redis", envOr("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"), "Redis for the run (keys under a fresh prefix, removed after)")
	flag.IntVar(&o.port, "port", 0, "port of the server under test (0: free one; vercel dev: $VERCEL_DEV_PORT, else 4000+random)")
	flag.StringVar(&o.vercel, "vercel", filepath.Join(os.Getenv("HOME"), ".cache/stravahook-vercel/node_modules/.bin/vercel"), "the Vercel CLI (installed by .ci/vercel-check.sh)")
	flag.BoolVar(&o.answers, "answers", true, "also measure the intake's answer time with and without the trigger")
	flag.IntVar(&o.answerN, "answer-n", 400, "requests per answer-time case")
	flag.BoolVar(&o.notify, "notify", false, "also measure POST → verified notification (NOTIFY_URL to a receiver here)")
	flag.StringVar(&o.keepLogs, "logs", "", "keep the server's log in this file")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "timely:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(o options) error {
	ctx, stop := signalContext()
	defer stop()
	client, err := rdb.Connect(ctx, o.redisURL)
	if err != nil {
		return fmt.Errorf("redis %s: %w", rdb.Redact(o.redisURL), err)
	}
	defer client.Close()
	prefix := fmt.Sprintf("timely-bench-%x:", rand.Uint32())
	defer deletePrefix(client, prefix)

	fmt.Printf("# timely bench %s, Redis %s, prefix %s\n", time.Now().UTC().Format(time.RFC3339), rdb.Redact(o.redisURL), prefix)
	if o.server != "" {
		if err := endToEnd(ctx, o, client, prefix+"e2e:"); err != nil {
			return err
		}
	}
	if o.answers {
		if err := answerTimes(ctx, o, client, prefix+"answers:"); err != nil {
			return err
		}
	}
	return nil
}

// endToEnd posts o.n creates to the server under test and waits for each
// activity to be kept, with no drain started by anyone but the intake.
func endToEnd(ctx context.Context, o options, client rueidis.Client, prefix string) error {
	double := stravatest.NewServer(stravatest.WithApp(clientID, clientSecret))
	defer double.Close()
	jane := double.AddSampleData()
	double.SetLatency(o.stravaLatency)
	tok := double.IssueToken(jane.ID, stravatest.FullScope)
	st := store.New(client, prefix)
	if err := st.SaveAthlete(ctx, store.Athlete{ID: jane.ID, Name: "Jane Doe", AccessToken: tok.AccessToken,
		RefreshToken: tok.RefreshToken, ExpiresAt: tok.ExpiresAt, Scope: tok.Scope}); err != nil {
		return err
	}

	env := map[string]string{
		"REDIS_URL": o.redisURL, "STRAVAHOOK_REDIS_PREFIX": prefix, "CRON_SECRET": cronSecret,
		"STRAVA_BASE_URL": double.URL, "STRAVA_CLIENT_ID": clientID, "STRAVA_CLIENT_SECRET": clientSecret,
		"STRAVA_VERIFY_TOKEN": verifyToken,
	}
	var recv *receiver
	if o.notify {
		recv = newReceiver()
		defer recv.Close()
		env["NOTIFY_URL"], env["NOTIFY_SECRET"] = recv.srv.URL, recv.secretText
	}

	logPath := o.keepLogs
	if logPath == "" {
		f, err := os.CreateTemp("", "timely-server-*.log")
		if err != nil {
			return err
		}
		f.Close()
		logPath = f.Name()
		defer os.Remove(logPath)
	}
	base, stopServer, err := startServer(ctx, o, env, logPath)
	if err != nil {
		return err
	}
	defer stopServer()
	if err := warmUp(ctx, base); err != nil {
		return err
	}

	type sample struct {
		id           int64
		posted, kept time.Time
		answer       time.Duration
		status       int
	}
	samples := make([]*sample, o.n)
	for i := range samples {
		samples[i] = &sample{id: double.NewActivity(jane.ID, "Ride").ID}
	}
	callsBefore := double.Calls(stravatest.RouteActivity)
	fmt.Printf("\n## end to end under %s: %d creates %v apart, Strava answering in %v, no cron, no process\n", o.server, o.n, o.gap, o.stravaLatency)
	start := time.Now()
	var wg sync.WaitGroup
	for i, s := range samples {
		wg.Go(func() {
			time.Sleep(time.Until(start.Add(time.Duration(i) * o.gap)))
			ev := stravatest.ActivityEvent("create", jane.ID, s.id, nil)
			ev.SubscriptionID, ev.EventTime = stravatest.DefaultSubscriptionID, time.Now().Unix()
			s.posted = time.Now()
			s.status = post(ctx, base+"/api/activity_update", ev)
			s.answer = time.Since(s.posted)
		})
	}

	deadline := time.Now().Add(time.Duration(o.n)*o.gap + 2*time.Minute)
	for {
		waiting := 0
		for _, s := range samples {
			if !s.kept.IsZero() || s.posted.IsZero() {
				if s.posted.IsZero() {
					waiting++
				}
				continue
			}
			if _, err := st.Activity(ctx, s.id); err == nil {
				s.kept = time.Now()
			} else {
				waiting++
			}
		}
		if waiting == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()

	var toKept, answers []time.Duration
	bad := 0
	for _, s := range samples {
		answers = append(answers, s.answer)
		if s.status != 200 {
			bad++
		}
		if !s.kept.IsZero() {
			toKept = append(toKept, s.kept.Sub(s.posted))
		}
	}
	// The last prompt drain keeps watching the queue for a few seconds
	// after the last activity is kept; its log line comes when it ends.
	time.Sleep(5 * time.Second)
	stopServer()
	drains, stepped := countDrains(logPath)
	fmt.Printf("kept:             %d of %d (non-200 answers: %d)\n", len(toKept), o.n, bad)
	fmt.Printf("POST → kept:      median %s, p95 %s, max %s\n", ms(pct(toKept, 50)), ms(pct(toKept, 95)), ms(pct(toKept, 100)))
	fmt.Printf("intake answer:    median %s, p99 %s (as seen by the poster)\n", ms(pct(answers, 50)), ms(pct(answers, 99)))
	fmt.Printf("prompt drains:    %s ran, %s stepped aside (server log)\n", drains, stepped)
	fmt.Printf("Strava GETs:      %d\n", double.Calls(stravatest.RouteActivity)-callsBefore)
	if recv != nil {
		waitUntil := time.Now().Add(30 * time.Second)
		for recv.count() < len(samples) && time.Now().Before(waitUntil) {
			time.Sleep(20 * time.Millisecond)
		}
		var toNotified []time.Duration
		for _, s := range samples {
			if at, ok := recv.at(s.id); ok {
				toNotified = append(toNotified, at.Sub(s.posted))
			}
		}
		fmt.Printf("notified:         %d of %d verified (bad signatures: %d)\n", len(toNotified), o.n, recv.bad.Load())
		fmt.Printf("POST → notified:  median %s, p95 %s, max %s\n", ms(pct(toNotified, 50)), ms(pct(toNotified, 95)), ms(pct(toNotified, 100)))
	}
	if len(toKept) < o.n {
		return fmt.Errorf("%d of %d activities never kept", o.n-len(toKept), o.n)
	}
	return nil
}

// startServer starts `stravahook serve` (built here) or `vercel dev
// --local` with env and returns its base URL.
func startServer(ctx context.Context, o options, env map[string]string, logPath string) (string, func(), error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", nil, err
	}
	port := o.port
	var cmd *exec.Cmd
	switch o.server {
	case "serve":
		bin := filepath.Join(os.TempDir(), fmt.Sprintf("timely-stravahook-%d", os.Getpid()))
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./lib/cmd/stravahook")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return "", nil, fmt.Errorf("build stravahook (run from the repository root): %w", err)
		}
		if port == 0 {
			port = freePort()
		}
		cmd = exec.Command(bin, "serve", "-addr", fmt.Sprintf("127.0.0.1:%d", port))
		defer func() { go func() { time.Sleep(time.Minute); os.Remove(bin) }() }()
	case "vercel-dev":
		if port == 0 {
			if v := os.Getenv("VERCEL_DEV_PORT"); v != "" {
				fmt.Sscan(v, &port)
			} else {
				port = 4000 + rand.IntN(2000)
			}
		}
		cmd = exec.Command(o.vercel, "dev", "--local", "--listen", fmt.Sprint(port), "--yes")
		env["VERCEL_TELEMETRY_DISABLED"], env["GOSUMDB"] = "1", "off"
	default:
		return "", nil, fmt.Errorf("-server %q: want serve or vercel-dev", o.server)
	}
	// @vercel/go's dev server listens on $VERCEL_DEV_PORT when it is set:
	// inherited, every function would try vercel dev's own port.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "VERCEL_DEV_PORT=") })
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	var once sync.Once
	stop := func() { once.Do(func() { stopProcess(cmd, logFile) }) }
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	fmt.Printf("server: %s at %s (log %s)\n", o.server, base, logPath)
	return base, stop, nil
}

func stopProcess(cmd *exec.Cmd, logFile *os.File) {
	{
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logFile.Close()
	}
}

// warmUp waits until the server answers the validation GET, and makes
// vercel dev build both functions before the clock starts.
func warmUp(ctx context.Context, base string) error {
	deadline := time.Now().Add(5 * time.Minute)
	url := base + "/api/activity_update?hub.mode=subscribe&hub.verify_token=" + verifyToken + "&hub.challenge=warm"
	for {
		resp, err := httpGet(ctx, url, "")
		if err == nil && resp == 200 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("server never answered the validation GET (%v, %d)", err, resp)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// vercel dev builds a function on its first request: a refused one
	// (401) builds process_events without draining anything.
	_, _ = httpGet(ctx, base+"/api/process_events", "")
	return nil
}

func httpGet(ctx context.Context, url, auth string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	c := &http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

var poster = &http.Client{Timeout: time.Minute}

func post(ctx context.Context, url string, ev strava.Event) int {
	req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(string(ev.AppendJSON(nil))))
	req.Header.Set("Content-Type", "application/json")
	resp, err := poster.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// countDrains counts, in the server's JSON log, the drains that ran with
// trigger prompt and the prompt drains that stepped aside.
func countDrains(path string) (ran, stepped string) {
	f, err := os.Open(path)
	if err != nil {
		return "n/a", "n/a"
	}
	defer f.Close()
	drain := regexp.MustCompile(`"msg":"drain".*"trigger":"prompt"|"trigger":"prompt".*"msg":"drain"`)
	aside := regexp.MustCompile(`"msg":"prompt drain stepped aside`)
	r, s := 0, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if drain.MatchString(line) {
			r++
		}
		if aside.MatchString(line) {
			s++
		}
	}
	return fmt.Sprint(r), fmt.Sprint(s)
}

// answerTimes measures the intake's answer at light load (one request at
// a time) in process, over real HTTP, for each trigger target.
func answerTimes(ctx context.Context, o options, client rueidis.Client, prefix string) error {
	refused := closedPort()
	hang, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers a TLS hello
	if err != nil {
		return err
	}
	defer hang.Close()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			go func() { time.Sleep(time.Minute); c.Close() }()
		}
	}()
	cases := []struct {
		name string
		env  map[string]string
	}{
		{"trigger off", map[string]string{"STRAVAHOOK_PROMPT_DRAIN": "off"}},
		{"trigger on, drains here", nil},
		{"trigger on, connection refused", map[string]string{"PUBLIC_URL": "http://" + refused}},
		{"trigger on, target hangs (TLS)", map[string]string{"PUBLIC_URL": "https://" + hang.Addr().String()}},
	}
	fmt.Printf("\n## intake answer time, light load (one request at a time, %d per case), in process over HTTP\n", o.answerN)
	fmt.Println("`each` = a fresh instance per request, so every request sends a trigger; `steady` = one instance (a trigger every 2 s at most)")
	fmt.Printf("%-34s %22s %22s\n", "case", "each: median / p99", "steady: median / p99")
	for i, c := range cases {
		env := map[string]string{
			"STRAVAHOOK_REDIS_PREFIX": fmt.Sprintf("%s%d:", prefix, i), "CRON_SECRET": cronSecret,
			"STRAVA_CLIENT_ID": clientID, "STRAVA_CLIENT_SECRET": clientSecret, "STRAVA_VERIFY_TOKEN": verifyToken,
			"STRAVA_BASE_URL": "http://" + refused,
		}
		for k, v := range c.env {
			env[k] = v
		}
		cfg, err := app.LoadConfig(func(k string) string { return env[k] })
		if err != nil {
			return err
		}
		logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
		var current atomic.Pointer[http.Handler]
		fresh := func() {
			h := app.New(cfg, client, logger).Routes()
			current.Store(&h)
		}
		fresh()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*current.Load()).ServeHTTP(w, r) }))
		measure := func(each bool) []time.Duration {
			var out []time.Duration
			for range o.answerN {
				if each {
					fresh()
				}
				ev := strava.Event{ObjectType: "activity", AspectType: "create", ObjectID: rand.Int64N(1 << 40), OwnerID: 1 + rand.Int64N(1<<30),
					SubscriptionID: 1, EventTime: time.Now().Unix()}
				t := time.Now()
				if post(ctx, srv.URL+"/api/activity_update", ev) != 200 {
					continue
				}
				out = append(out, time.Since(t))
				time.Sleep(5 * time.Millisecond)
			}
			return out
		}
		each := measure(true)
		steady := measure(false)
		srv.Close()
		fmt.Printf("%-34s %22s %22s\n", c.name,
			ms(pct(each, 50))+" / "+ms(pct(each, 99)), ms(pct(steady, 50))+" / "+ms(pct(steady, 99)))
	}
	return nil
}

// receiver verifies notifications like `stravahook listen` and notes when
// each activity's arrived.
type receiver struct {
	srv        *httptest.Server
	secretText string
	secret     notify.Secret
	mu         sync.Mutex
	got        map[int64]time.Time
	bad        atomic.Int64
}

func newReceiver() *receiver {
	r := &receiver{secretText: notify.NewSecret(), got: map[int64]time.Time{}}
	r.secret, _ = notify.ParseSecret(r.secretText)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		now := time.Now()
		if err := r.secret.Verify(req.Header, body, now, notify.DefaultTolerance); err != nil {
			r.bad.Add(1)
			w.WriteHeader(401)
			return
		}
		var n struct {
			Type string `json:"type"`
			Data struct {
				ActivityID int64 `json:"activity_id"`
			} `json:"data"`
		}
		if json.Unmarshal(body, &n) == nil && n.Type == "activity.created" {
			r.mu.Lock()
			if _, seen := r.got[n.Data.ActivityID]; !seen {
				r.got[n.Data.ActivityID] = now
			}
			r.mu.Unlock()
		}
		w.WriteHeader(204)
	}))
	return r
}

func (r *receiver) Close() { r.srv.Close() }
func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}
func (r *receiver) at(id int64) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.got[id]
	return t, ok
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return -1
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(min(i, len(s))-1, 0)]
}

func ms(d time.Duration) string {
	if d < 0 {
		return "n/a"
	}
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// closedPort is an address nothing listens on (connection refused).
func closedPort() string { return fmt.Sprintf("127.0.0.1:%d", freePort()) }

func deletePrefix(client rueidis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cursor uint64
	for {
		e, err := client.Do(ctx, client.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			return
		}
		if len(e.Elements) > 0 {
			client.Do(ctx, client.B().Del().Key(e.Elements...).Build())
		}
		if cursor = e.Cursor; cursor == 0 {
			return
		}
	}
}

func signalContext() (context.Context, func()) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
