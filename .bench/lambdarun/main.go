//go:build linux

// Command lambdarun measures Vercel function binaries the way they run in
// production: each `bootstrap` that `vercel build` made is exec'd with
// AWS_LAMBDA_RUNTIME_API pointing at a stand-in of the Lambda Runtime API
// (runtimeapi.go), and is fed go-bridge requests, against a private
// redis-server that speaks only TLS (certificates made for the run).
//
// It measures, for stravahook's validation GET, an event POST (create) and an
// event POST (delete), and beside them for an empty function built the same
// way and for the floor (.bench/floor: a bare process that opens one TLS
// connection to Redis and sends one command): cold start (exec → first
// answer), warm latency (median), peak RSS, binary size, and Redis commands
// per invocation (INFO commandstats before and after each one). It prints a
// Markdown table and the target ratios. .bench/deployed.sh builds everything
// and runs it; see .bench/README.md.
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	procs := &children{}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		procs.killAll()
		os.Exit(130)
	}()
	err := run(os.Args[1:], os.Stdout, procs)
	procs.killAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lambdarun:", err)
		os.Exit(1)
	}
}

type options struct {
	functions, project     string
	emptyFunctions         string
	emptyProject           string
	function, empty        string
	floorBin               string
	redisURL, redisCA      string
	work, results, label   string
	cold, warm, warmup     int
	timeout                time.Duration
	coldTarget, rssTarget  float64
	warmExtraMS            float64
	verifyToken, challenge string
	certDir                string
	tlsCert, tlsKey        string
	spacedN                int
	spacing                time.Duration
	extraEnv               []string
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("lambdarun", flag.ContinueOnError)
	fs.StringVar(&o.functions, "functions", "", "`dir` .vercel/output/functions of a vercel build (required)")
	fs.StringVar(&o.project, "project", "", "`dir` the project vercel build ran in (default: three levels above -functions)")
	fs.StringVar(&o.emptyFunctions, "empty-functions", "", "`dir` .vercel/output/functions of the build holding the empty function (default: -functions)")
	fs.StringVar(&o.emptyProject, "empty-project", "", "`dir` that build ran in (default: three levels above -empty-functions)")
	fs.StringVar(&o.function, "function", "activity_update", "the function under test (api/<name>.go)")
	fs.StringVar(&o.empty, "empty", "bench_empty", "the empty function (api/<name>.go) built beside it")
	fs.StringVar(&o.floorBin, "floor", "", "the floor binary built from .bench/floor (required)")
	fs.StringVar(&o.redisURL, "redis-url", "", "rediss://host:port of a TLS Redis used by nothing else (required)")
	fs.StringVar(&o.redisCA, "redis-ca", "", "the CA `file` that signed its certificate (required)")
	fs.StringVar(&o.work, "work", "", "`dir`, the functions' HOME (required)")
	fs.StringVar(&o.results, "results", ".bench/results", "`dir` for the processes' logs")
	fs.StringVar(&o.label, "label", "", "what was measured (commit, Go version), printed above the table")
	fs.IntVar(&o.cold, "cold", 20, "cold starts per column")
	fs.IntVar(&o.warm, "warm", 200, "measured warm invocations per column")
	fs.IntVar(&o.warmup, "warmup", 20, "warm invocations per column before measuring")
	fs.StringVar(&o.certDir, "cert-dir", "", "SSL_CERT_DIR for the measured processes (default unset: Go also reads the system's certificate directories, as a function reads its image's bundle)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "certificate `file` for the deployment stand-in (127.0.0.1, signed by -redis-ca; required)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "its key `file` (required)")
	fs.IntVar(&o.spacedN, "spaced", 10, "invocations of the spaced create column, -spacing apart")
	fs.DurationVar(&o.spacing, "spacing", 2100*time.Millisecond, "time between the spaced column's invocations (a prompt drain is triggered at most every 2 s per instance)")
	fs.Func("env", "`KEY=VALUE` added to the functions' environment (repeatable), e.g. STRAVAHOOK_PROMPT_DRAIN=off", func(kv string) error {
		if !strings.Contains(kv, "=") {
			return errors.New("want KEY=VALUE")
		}
		o.extraEnv = append(o.extraEnv, kv)
		return nil
	})
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "longest wait for one answer")
	fs.Float64Var(&o.coldTarget, "cold-target", 1.2, "cold start target, × the floor's")
	fs.Float64Var(&o.warmExtraMS, "warm-target-ms", 0.5, "warm latency target, ms over the empty function's")
	fs.Float64Var(&o.rssTarget, "rss-target", 1.6, "peak RSS target, × the empty function's")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.functions == "" || o.floorBin == "" || o.work == "" || o.redisURL == "" || o.redisCA == "" || o.tlsCert == "" || o.tlsKey == "" {
		return o, errors.New("-functions, -floor, -work, -redis-url, -redis-ca, -tls-cert and -tls-key are required")
	}
	if o.cold < 1 || o.warm < 1 || o.warmup < 0 {
		return o, errors.New("-cold and -warm must be ≥ 1, -warmup ≥ 0")
	}
	if o.project == "" {
		o.project = filepath.Dir(filepath.Dir(filepath.Dir(o.functions)))
	}
	if o.emptyFunctions == "" {
		o.emptyFunctions, o.emptyProject = o.functions, o.project
	}
	if o.emptyProject == "" {
		o.emptyProject = filepath.Dir(filepath.Dir(filepath.Dir(o.emptyFunctions)))
	}
	o.verifyToken, o.challenge = "bench-verify-token", "bench-challenge-"
	return o, nil
}

// column is one thing measured: a request to a function binary, or the floor.
type column struct {
	title   string
	source  string // api/<name>.go, or "" for the floor
	bin     string
	isFloor bool     // .bench/floor, not a function
	bare    bool     // .bench/floor without Redis
	spaced  bool     // invoked -spacing apart, after the other columns' warm phase
	env     []string // added to the function's environment
	key     string
	request func(i int) bridgeRequest
	check   func(i int, status int, body []byte) error

	cold       []time.Duration
	coldCmds   commandCalls
	warm       []time.Duration
	warmCmds   []int
	warmCmdSet commandCalls // all commands of the measured warm invocations
	// prompt-drain requests to the deployment stand-in
	coldTriggers, warmTriggers int
	rssKiB                     int64
	coldCPU                    []time.Duration // CPU time of processes stopped right after their first answer
	size                       int64
	err                        error
	proc                       measured
}

func (c *column) fail(err error) {
	if c.err == nil {
		c.err = err
	}
	if c.proc != nil {
		c.noteUsage(c.proc.stop(), false)
		c.proc = nil
	}
}

func (c *column) noteUsage(u usage, cold bool) {
	if u.maxRSSKiB > c.rssKiB {
		c.rssKiB = u.maxRSSKiB
	}
	if cold {
		c.coldCPU = append(c.coldCPU, u.cpu)
	}
}

// bridgeRequest is github.com/vercel/go-bridge's Request as Vercel sends it:
// the JSON string in the body of the Lambda event.
type bridgeRequest struct {
	Host     string              `json:"host"`
	Path     string              `json:"path"`
	Method   string              `json:"method"`
	Headers  map[string][]string `json:"headers"`
	Encoding string              `json:"encoding,omitempty"`
	Body     string              `json:"body"`
}

// bridgeResponse is go-bridge's Response, the function's answer.
type bridgeResponse struct {
	StatusCode int                 `json:"statusCode"`
	Headers    map[string][]string `json:"headers"`
	Encoding   string              `json:"encoding"`
	Body       string              `json:"body"`
}

// lambdaEvent wraps a bridgeRequest as go-bridge reads it
// (events.APIGatewayProxyRequest's body).
func lambdaEvent(req bridgeRequest) []byte {
	inner, err := json.Marshal(req)
	if err != nil {
		panic(err)
	}
	outer, err := json.Marshal(map[string]string{"body": string(inner)})
	if err != nil {
		panic(err)
	}
	return outer
}

func decodeAnswer(raw []byte) (int, []byte, error) {
	var res bridgeResponse
	if err := json.Unmarshal(raw, &res); err != nil {
		return 0, nil, fmt.Errorf("answer is not go-bridge's Response: %v: %.200s", err, raw)
	}
	body := []byte(res.Body)
	if res.Encoding == "base64" {
		b, err := base64.StdEncoding.DecodeString(res.Body)
		if err != nil {
			return 0, nil, fmt.Errorf("answer body: %w", err)
		}
		body = b
	}
	return res.StatusCode, body, nil
}

func headers(method string, body []byte) map[string][]string {
	h := map[string][]string{
		"host":              {"stravahook.example.vercel.app"},
		"user-agent":        {"bench (lambdarun)"},
		"accept":            {"*/*"},
		"x-forwarded-host":  {"stravahook.example.vercel.app"},
		"x-forwarded-proto": {"https"},
		"x-forwarded-for":   {"203.0.113.7"},
		"x-real-ip":         {"203.0.113.7"},
		"x-vercel-id":       {"iad1::bench-0000000000000-000000000000"},
	}
	if method == "POST" {
		h["content-type"] = []string{"application/json"}
		h["content-length"] = []string{strconv.Itoa(len(body))}
	}
	return h
}

func getRequest(path string) bridgeRequest {
	return bridgeRequest{Host: "stravahook.example.vercel.app", Path: path, Method: "GET", Headers: headers("GET", nil)}
}

// eventRequest is a Strava webhook POST; Vercel hands the body to the
// function base64-encoded.
func eventRequest(path, aspect string, objectID int64) bridgeRequest {
	body := fmt.Appendf(nil, `{"aspect_type":%q,"event_time":%d,"object_id":%d,"object_type":"activity","owner_id":134815,"subscription_id":120475,"updates":{}}`,
		aspect, time.Now().Unix(), objectID)
	return bridgeRequest{Host: "stravahook.example.vercel.app", Path: path, Method: "POST", Headers: headers("POST", body),
		Encoding: "base64", Body: base64.StdEncoding.EncodeToString(body)}
}

func wantStatus(want int) func(int, int, []byte) error {
	return func(_ int, status int, body []byte) error {
		if status != want {
			return fmt.Errorf("status %d, want %d: %.200s", status, want, body)
		}
		return nil
	}
}

// bootstrap finds a function's binary: filePathMap.bootstrap of its
// .vc-config.json, relative to the .func directory or to the project.
func bootstrap(functions, project, name string) (string, error) {
	funcDir := filepath.Join(functions, "api", name+".func")
	raw, err := os.ReadFile(filepath.Join(funcDir, ".vc-config.json"))
	if err != nil {
		return "", fmt.Errorf("function api/%s: %w", name, err)
	}
	var cfg struct {
		Handler     string            `json:"handler"`
		FilePathMap map[string]string `json:"filePathMap"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return "", fmt.Errorf("api/%s .vc-config.json: %w", name, err)
	}
	handler := cfg.Handler
	if handler == "" {
		handler = "bootstrap"
	}
	candidates := []string{filepath.Join(funcDir, handler)}
	if p, ok := cfg.FilePathMap[handler]; ok {
		if filepath.IsAbs(p) {
			candidates = append(candidates, p)
		} else {
			candidates = append(candidates, filepath.Join(funcDir, p), filepath.Join(project, p))
		}
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && st.Mode().IsRegular() {
			return c, nil
		}
	}
	return "", fmt.Errorf("api/%s: no %s binary at %s", name, handler, strings.Join(candidates, " or "))
}

func run(args []string, stdout io.Writer, procs *children) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	fnBin, err := bootstrap(o.functions, o.project, o.function)
	if err != nil {
		return err
	}
	emptyBin, err := bootstrap(o.emptyFunctions, o.emptyProject, o.empty)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.results, 0o755); err != nil {
		return err
	}
	loadStart := loadAverage()
	redis, err := newTLSRedis(o.redisURL, o.redisCA)
	if err != nil {
		return err
	}
	stats, err := redis.dial()
	if err != nil {
		return err
	}
	defer stats.close()

	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + o.work, "LANG=C.UTF-8", "TZ=:UTC",
		"AWS_REGION=us-east-1", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024", "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_NAME=bench", "_HANDLER=bootstrap", "VERCEL=1", "VERCEL_ENV=production", "VERCEL_REGION=iad1",
		"REDIS_URL=" + redis.url(), "SSL_CERT_FILE=" + redis.caFile,
		"STRAVA_VERIFY_TOKEN=" + o.verifyToken, "STRAVA_CLIENT_ID=4242", "STRAVA_CLIENT_SECRET=bench-client-secret",
		"CRON_SECRET=bench-cron-secret-0123456789", "STRAVAHOOK_REDIS_PREFIX=bench:",
	}
	env = append(env, o.extraEnv...)
	site, err := startDeployment(o.tlsCert, o.tlsKey)
	if err != nil {
		return err
	}
	defer site.close()
	floorEnv := []string{"PATH=/usr/bin:/bin", "REDIS_URL=" + redis.url(), "SSL_CERT_FILE=" + redis.caFile}
	if o.certDir != "" {
		env = append(env, "SSL_CERT_DIR="+o.certDir)
		floorEnv = append(floorEnv, "SSL_CERT_DIR="+o.certDir)
	}
	fnPath := "/api/" + o.function
	cols := []*column{
		{title: "validation GET", source: o.function, bin: fnBin,
			request: func(i int) bridgeRequest {
				return getRequest(fmt.Sprintf("%s?hub.mode=subscribe&hub.verify_token=%s&hub.challenge=%s%d", fnPath, o.verifyToken, o.challenge, i))
			},
			check: func(i int, status int, body []byte) error {
				want := fmt.Sprintf(`{"hub.challenge":"%s%d"}`, o.challenge, i)
				if status != 200 || strings.TrimSpace(string(body)) != want {
					return fmt.Errorf("validation GET: %d %.200q, want 200 %s", status, body, want)
				}
				return nil
			}},
		{title: "event POST (create)", source: o.function, bin: fnBin,
			request: func(i int) bridgeRequest { return eventRequest(fnPath, "create", 9_100_000_000+int64(i)) },
			check:   wantStatus(200)},
		// The trigger's TLS connection to the deployment is a second one
		// the floor does not open: this column is the intake without it.
		{title: "event POST (create), prompt drains off", source: o.function, bin: fnBin,
			env:     []string{"STRAVAHOOK_PROMPT_DRAIN=off"},
			request: func(i int) bridgeRequest { return eventRequest(fnPath, "create", 9_400_000_000+int64(i)) },
			check:   wantStatus(200)},
		{title: "event POST (delete)", source: o.function, bin: fnBin,
			request: func(i int) bridgeRequest { return eventRequest(fnPath, "delete", 9_200_000_000+int64(i)) },
			check:   wantStatus(200)},
		{title: fmt.Sprintf("event POST (create), %s apart", o.spacing), source: o.function, bin: fnBin, spaced: true,
			request: func(i int) bridgeRequest { return eventRequest(fnPath, "create", 9_300_000_000+int64(i)) },
			check:   wantStatus(200)},
		{title: "empty function", source: o.empty, bin: emptyBin,
			request: func(int) bridgeRequest { return getRequest("/api/" + o.empty) },
			check:   wantStatus(200)},
		{title: "floor", bin: o.floorBin, isFloor: true},
		{title: "bare process", bin: o.floorBin, isFloor: true, bare: true},
	}
	for _, c := range cols {
		if st, err := os.Stat(c.bin); err == nil {
			c.size = st.Size()
		}
	}
	for i, c := range cols {
		c.key = fmt.Sprintf("c%d", i)
	}
	logFor := func(c *column) string {
		name := strings.NewReplacer(" ", "-", "(", "", ")", "", ",", "").Replace(strings.ToLower(c.title))
		return filepath.Join(o.results, "deployed-"+name+".log")
	}
	for _, c := range cols {
		_ = os.Remove(logFor(c))
	}

	// answer sends request i to c's process and checks the answer.
	n := 0 // invocations so far (request numbers stay unique across columns' processes)
	answer := func(c *column) (time.Duration, error) {
		n++
		if c.isFloor {
			d, _, err := c.proc.invoke(nil)
			return d, err
		}
		d, raw, err := c.proc.invoke(lambdaEvent(c.request(n)))
		if err != nil {
			return 0, err
		}
		status, body, err := decodeAnswer(raw)
		if err == nil {
			err = c.check(n, status, body)
		}
		return d, err
	}
	// begin starts a fresh process for c with its first request.
	begin := func(c *column) (time.Duration, error) {
		n++
		if c.isFloor {
			fenv := floorEnv
			if c.bare {
				fenv = append(fenv[:len(fenv):len(fenv)], "FLOOR_REDIS=off")
			}
			p, d, err := startFloor(c.bin, fenv, logFor(c), o.timeout, procs)
			if err != nil {
				return 0, err
			}
			c.proc = p
			return d, nil
		}
		fenv := append(append(env[:len(env):len(env)], "PUBLIC_URL="+site.url+"/"+c.key), c.env...)
		p, d, raw, err := startFunction(c.bin, fenv, logFor(c), lambdaEvent(c.request(n)), o.timeout, procs)
		if err != nil {
			return 0, err
		}
		c.proc = p
		status, body, err := decodeAnswer(raw)
		if err == nil {
			err = c.check(n, status, body)
		}
		return d, err
	}

	// counted runs step (a cold start or an invocation) and returns the Redis
	// commands sent meanwhile. errStats ends the run: without INFO nothing
	// can be counted.
	var errStats error
	counted := func(step func(*column) (time.Duration, error), c *column) (time.Duration, commandCalls, error) {
		before, err := stats.commandStats()
		if err != nil {
			errStats = err
			return 0, nil, err
		}
		d, err := step(c)
		if err != nil {
			return 0, nil, err
		}
		after, err := stats.commandStats()
		if err != nil {
			errStats = err
			return 0, nil, err
		}
		return d, after.since(before), nil
	}
	// roundRobin calls each column's f in a rotating order (so that drift of
	// a busy machine favours no column), skipping columns that failed.
	roundRobin := func(rounds int, f func(round int, c *column)) error {
		for round := 0; round < rounds; round++ {
			for k := range cols {
				if c := cols[(round+k)%len(cols)]; c.err == nil {
					f(round, c)
				}
				if errStats != nil {
					return errStats
				}
			}
		}
		return nil
	}

	// Cold starts; the last round's processes stay up for the warm phase.
	err = roundRobin(o.cold, func(round int, c *column) {
		d, cmds, err := counted(begin, c)
		if err != nil {
			c.fail(fmt.Errorf("cold start %d: %w", round+1, err))
			return
		}
		c.cold = append(c.cold, d)
		if round == 0 {
			c.coldCmds = cmds
		}
		if round < o.cold-1 {
			c.noteUsage(c.proc.stop(), true)
			c.proc = nil
		}
	})
	if err != nil {
		return err
	}
	// A prompt drain's request is written before the answer, but may reach
	// the stand-in a moment after it.
	settle := func() map[*column]int {
		time.Sleep(300 * time.Millisecond)
		m := map[*column]int{}
		for _, c := range cols {
			m[c] = site.count(c.key)
		}
		return m
	}
	afterCold := settle()
	for _, c := range cols {
		c.coldTriggers = afterCold[c]
	}

	// Warm invocations: round-robin, then the spaced column's, each
	// -spacing after the previous one.
	for _, c := range cols {
		c.warmCmdSet = commandCalls{}
	}
	warm := func(i int, c *column) {
		d, cmds, err := counted(answer, c)
		if err != nil {
			c.fail(fmt.Errorf("warm invocation %d: %w", i+1, err))
			return
		}
		if i < o.warmup {
			return
		}
		c.warm = append(c.warm, d)
		c.warmCmds = append(c.warmCmds, cmds.total())
		for name, k := range cmds {
			c.warmCmdSet[name] += k
		}
	}
	err = roundRobin(o.warmup+o.warm, func(i int, c *column) {
		if !c.spaced {
			warm(i, c)
		}
	})
	if err != nil {
		return err
	}
	for _, c := range cols {
		for i := 0; c.spaced && c.err == nil && i < o.spacedN && errStats == nil; i++ {
			time.Sleep(o.spacing)
			warm(o.warmup+i, c)
		}
	}
	if errStats != nil {
		return errStats
	}
	afterWarm := settle()
	for _, c := range cols {
		c.warmTriggers = afterWarm[c] - afterCold[c]
	}
	for _, c := range cols {
		if c.proc != nil {
			c.noteUsage(c.proc.stop(), false)
			c.proc = nil
		}
	}

	report(stdout, o, cols, loadStart, loadAverage())
	var failed []string
	if u := site.unexpected(); len(u) > 0 {
		failed = append(failed, "the deployment stand-in got requests that were not prompt drains: "+strings.Join(u, ", "))
	}
	for _, c := range cols {
		if c.err != nil {
			failed = append(failed, c.title+": "+c.err.Error())
		}
	}
	if len(failed) > 0 {
		return errors.New("not every column could be measured:\n" + strings.Join(failed, "\n"))
	}
	return nil
}

// existingCertDirs names the directories Go's crypto/x509 reads on Linux
// when SSL_CERT_DIR is unset, with how many entries each has.
func existingCertDirs() string {
	var out []string
	for _, d := range []string{"/etc/ssl/certs", "/etc/pki/tls/certs"} {
		if entries, err := os.ReadDir(d); err == nil {
			out = append(out, fmt.Sprintf("%s: %d entries", d, len(entries)))
		}
	}
	if len(out) == 0 {
		return "none exists"
	}
	return strings.Join(out, ", ")
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func median(ds []time.Duration) (time.Duration, bool) {
	return quantile(ds, 0.5)
}

// quantile is the nearest-rank quantile q of ds; the median of an even
// number of values is the mean of the middle two.
func quantile(ds []time.Duration, q float64) (time.Duration, bool) {
	if len(ds) == 0 {
		return 0, false
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if q == 0.5 && len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
	}
	i := int(q*float64(len(s))+0.999999) - 1
	if i < 0 {
		i = 0
	}
	return s[i], true
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func report(w io.Writer, o options, cols []*column, loadStart, loadEnd string) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	cell := func(c *column, f func(*column) string) string {
		if c.err != nil && len(c.cold) == 0 {
			return "failed"
		}
		return f(c)
	}
	row := func(label string, f func(*column) string) {
		p("| %s |", label)
		for _, c := range cols {
			p(" %s |", cell(c, f))
		}
		p("\n")
	}
	durCell := func(ds func(*column) []time.Duration, q float64) func(*column) string {
		return func(c *column) string {
			v, ok := quantile(ds(c), q)
			if !ok {
				return "n/a"
			}
			return fmt.Sprintf("%.2f", ms(v))
		}
	}
	coldOf := func(c *column) []time.Duration { return c.cold }
	warmOf := func(c *column) []time.Duration { return c.warm }

	p("# The deployed function: `vercel build` output under a Lambda Runtime API stand-in, Redis over TLS\n\n")
	p("%s, %s, %d CPUs, %s/%s. Load average at start %s, at end %s.\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), o.label, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, loadStart, loadEnd)
	p("%d cold starts and %d warm invocations (after %d unmeasured) per column, round-robin over the columns.\n", o.cold, o.warm, o.warmup)
	if o.certDir != "" {
		p("Trusted roots: the run's CA (SSL_CERT_FILE) and %s (SSL_CERT_DIR).\n\n", o.certDir)
	} else {
		p("Trusted roots: the run's CA (SSL_CERT_FILE) and Go's default certificate directories (%s), as a function loads its image's bundle.\n\n", existingCertDirs())
	}
	p("| | ")
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	p("%s |\n|---|", strings.Join(titles, " | "))
	for range cols {
		p("---|")
	}
	p("\n")
	row("built from", func(c *column) string {
		if c.bare {
			return "`.bench/floor`, FLOOR_REDIS=off"
		}
		if c.isFloor {
			return "`.bench/floor`"
		}
		return "`api/" + c.source + ".go`"
	})
	row(fmt.Sprintf("cold start, ms (exec → first answer; median of %d)", o.cold), durCell(coldOf, 0.5))
	row("CPU time of a cold start, ms (user + system until stopped after its first answer; median)", durCell(func(c *column) []time.Duration { return c.coldCPU }, 0.5))
	row(fmt.Sprintf("warm latency, ms (median of %d; of %d for the spaced column)", o.warm, o.spacedN), durCell(warmOf, 0.5))
	row("warm latency, ms (p90)", durCell(warmOf, 0.9))
	row("peak RSS, MiB (VmHWM, max over its processes)", func(c *column) string {
		return fmt.Sprintf("%.1f", float64(c.rssKiB)/1024)
	})
	row("binary size, MiB", func(c *column) string { return fmt.Sprintf("%.1f", float64(c.size)/(1<<20)) })
	row("Redis commands per warm invocation (median)", func(c *column) string {
		if len(c.warmCmds) == 0 {
			return "n/a"
		}
		s := append([]int(nil), c.warmCmds...)
		sort.Ints(s)
		return strconv.Itoa(s[len(s)/2])
	})
	row("… all warm invocations' commands", func(c *column) string { return c.warmCmdSet.String() })
	row("prompt-drain requests to the deployment: in the cold invocations (per process) / in all warm ones", func(c *column) string {
		if c.isFloor {
			return "–"
		}
		return fmt.Sprintf("%.1f / %d", float64(c.coldTriggers)/float64(max(len(c.cold), 1)), c.warmTriggers)
	})
	row("Redis commands in the first (cold) invocation", func(c *column) string {
		if c.coldCmds == nil {
			return "n/a"
		}
		return fmt.Sprintf("%d: %s", c.coldCmds.total(), c.coldCmds)
	})
	p("\nThe floor opens one TLS connection and sends PING, then one PING per warm invocation; the bare process is the same binary connecting nowhere (exec → its first line on stdout).\n")
	p("Warm latency is the time from the stand-in handing out the event (`/next`) to the function's whole answer arriving (`/response`); for the floor, one PING round trip through its stdin/stdout.\n\n")

	// Targets.
	fns, empty, floor, bare := cols[:len(cols)-3], cols[len(cols)-3], cols[len(cols)-2], cols[len(cols)-1]
	p("| target | figure | met |\n|---|---|---|\n")
	verdict := func(ok, known bool) string {
		if !known {
			return "n/a"
		}
		if ok {
			return "yes"
		}
		return "**no**"
	}
	floorCold, floorOK := median(floor.cold)
	emptyWarm, emptyOK := median(empty.warm)
	for _, c := range fns {
		cold, ok := median(c.cold)
		known := ok && floorOK && floorCold > 0
		r := 0.0
		if known {
			r = ms(cold) / ms(floorCold)
		}
		p("| cold start, %s ≤ %.1f× the floor's | %.2f / %.2f ms = %.2f× | %s |\n", c.title, o.coldTarget, ms(cold), ms(floorCold), r, verdict(r <= o.coldTarget, known))
	}
	for _, c := range fns {
		warm, ok := median(c.warm)
		known := ok && emptyOK
		p("| warm latency, %s ≤ the empty function's + %.1f ms | %.2f ms vs %.2f + %.1f = %.2f ms (%+.2f ms) | %s |\n", c.title, o.warmExtraMS,
			ms(warm), ms(emptyWarm), o.warmExtraMS, ms(emptyWarm)+o.warmExtraMS, ms(warm)-ms(emptyWarm), verdict(ms(warm) <= ms(emptyWarm)+o.warmExtraMS, known))
	}
	for _, c := range fns {
		known := c.rssKiB > 0 && empty.rssKiB > 0
		r := 0.0
		if known {
			r = float64(c.rssKiB) / float64(empty.rssKiB)
		}
		p("| peak RSS, %s ≤ %.1f× the empty function's | %.1f / %.1f MiB = %.2f× | %s |\n", c.title, o.rssTarget,
			float64(c.rssKiB)/1024, float64(empty.rssKiB)/1024, r, verdict(r <= o.rssTarget, known))
	}
	for _, c := range fns[1:3] {
		exact := 0
		for _, k := range c.warmCmds {
			if k == 1 {
				exact++
			}
		}
		p("| Redis commands per accepted %s = 1 | 1 in %d of %d warm invocations (%s) | %s |\n", strings.TrimSuffix(strings.TrimPrefix(c.title, "event POST ("), ")"),
			exact, len(c.warmCmds), c.warmCmdSet, verdict(exact == len(c.warmCmds), len(c.warmCmds) > 0))
	}

	// Where a cold start goes, from the medians above.
	b, bok := median(bare.cold)
	e, eok := median(empty.cold)
	if bok && eok && floorOK {
		p("\nWhere a cold start goes (differences of the medians above, so approximate; negative means below the noise):\n\n| ms | ")
		for _, c := range fns {
			p("%s | ", c.title)
		}
		p("\n|---|")
		for range fns {
			p("---|")
		}
		p("\n")
		split := func(label string, f func(x time.Duration) time.Duration) {
			p("| %s |", label)
			for _, c := range fns {
				if x, ok := median(c.cold); ok {
					p(" %.2f |", ms(f(x)))
				} else {
					p(" n/a |")
				}
			}
			p("\n")
		}
		split("starting a Go process (the bare process)", func(time.Duration) time.Duration { return b })
		split("+ the Lambda runtime loop and go-bridge (empty function − bare process)", func(time.Duration) time.Duration { return e - b })
		split("+ one TLS connection and one command (floor − bare process)", func(time.Duration) time.Duration { return floorCold - b })
		split("+ everything else the function does (the rest)", func(x time.Duration) time.Duration { return x - e - floorCold + b })
		split("= cold start", func(x time.Duration) time.Duration { return x })
	}
	for _, c := range cols {
		if c.err != nil {
			p("\n%s: FAILED: %v\n", c.title, c.err)
		}
	}
}
