package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Defaults for Config.
const (
	// DefaultTimeout is how long an endpoint has to answer 2xx.
	DefaultTimeout = 10 * time.Second
	// DefaultConcurrency is how many deliveries to one endpoint are in
	// flight at once (one per lane).
	DefaultConcurrency = 16
	// DefaultBatchSize is how many notifications one claim takes for one
	// endpoint: few enough that deliveries not started when the deadline
	// comes are handed straight back, many enough that Redis sees two
	// commands (claim, settle) per batch.
	DefaultBatchSize = 64
	// DefaultLease hides claimed notifications from other drains; a drain
	// that dies mid-delivery leaves them to the next one after this.
	DefaultLease = 2 * time.Minute
	// DefaultMaxAttempts, DefaultRetryBase and DefaultRetryCap retry for
	// about a day: waits of 1, 2, 4, … 128 min, then 4 h five times
	// (24 h 15 min in all, ±20 % jitter), then dead.
	DefaultMaxAttempts = 14
	DefaultRetryBase   = time.Minute
	DefaultRetryCap    = 4 * time.Hour
)

// UserAgent names stravahook on every delivery.
const UserAgent = "stravahook-notify/1 (Standard Webhooks; +https://github.com/stravahook/stravahook)"

// Config configures a Notifier. ConfigFromEnv builds it from NOTIFY_URL
// and NOTIFY_SECRET; zero tuning fields take the defaults.
type Config struct {
	Endpoints []Endpoint
	// EndpointsErr names NOTIFY_URL entries that could not be used.
	EndpointsErr error
	Secret       Secret
	// SecretErr says why NOTIFY_SECRET is unusable: notifications are
	// still stored, but none is delivered until it is fixed.
	SecretErr error
	// Fingerprint identifies the configuration: an endpoint stopped by a
	// 410 Gone starts again when it changes.
	Fingerprint string

	Timeout     time.Duration
	Concurrency int
	BatchSize   int
	Lease       time.Duration
	MaxAttempts int
	RetryBase   time.Duration
	RetryCap    time.Duration
	// Now is the wall clock for scores and signatures (default time.Now);
	// tests move it past backoffs instead of sleeping. Deadlines are on
	// the real, monotonic clock.
	Now func() time.Time
	// Jitter spreads a retry's wait (default: a random factor in
	// [0.8, 1.2)).
	Jitter     func(time.Duration) time.Duration
	HTTPClient *http.Client
}

// ConfigFromEnv parses NOTIFY_URL and NOTIFY_SECRET. Problems are kept in
// the Config (EndpointsErr, SecretErr), not returned: a bad notification
// setting must not stop the intake or the Strava work.
func ConfigFromEnv(notifyURL, notifySecret string) Config {
	var c Config
	c.Endpoints, c.EndpointsErr = ParseEndpoints(notifyURL)
	if len(c.Endpoints) > 0 {
		c.Secret, c.SecretErr = ParseSecret(notifySecret)
	}
	h := sha256.New()
	for _, e := range c.Endpoints {
		h.Write([]byte(e.URL + "\x00"))
	}
	h.Write([]byte{0})
	h.Write([]byte(strings.Join(strings.Fields(notifySecret), " ")))
	c.Fingerprint = hex.EncodeToString(h.Sum(nil)[:12])
	return c
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Lease <= 0 {
		c.Lease = DefaultLease
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryBase <= 0 {
		c.RetryBase = DefaultRetryBase
	}
	if c.RetryCap <= 0 {
		c.RetryCap = DefaultRetryCap
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Jitter == nil {
		c.Jitter = func(d time.Duration) time.Duration {
			return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
		}
	}
	if c.HTTPClient == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.MaxIdleConnsPerHost = c.Concurrency
		c.HTTPClient = &http.Client{
			Transport: transport,
			// A redirect is not a 2xx: the endpoint should be configured
			// with its final URL, and a signed body is not re-posted to a
			// place nobody configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return c
}

// Notifier stores and delivers notifications. It is safe for concurrent
// use.
type Notifier struct {
	cfg    Config
	client rueidis.Client
	prefix string
	logger *slog.Logger
}

// New returns a Notifier whose keys start with prefix. A nil logger
// discards logs.
func New(client rueidis.Client, prefix string, cfg Config, logger *slog.Logger) *Notifier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{cfg: cfg.withDefaults(), client: client, prefix: prefix, logger: logger}
}

// Enabled reports whether NOTIFY_URL names an endpoint: only then is
// anything stored.
func (n *Notifier) Enabled() bool { return n != nil && len(n.cfg.Endpoints) > 0 }

// Endpoints are the configured endpoints.
func (n *Notifier) Endpoints() []Endpoint { return n.cfg.Endpoints }

// endpointKeys are one endpoint's keys.
type endpointKeys struct{ due, dead, attempts, errors, gone string }

func (n *Notifier) keysOf(e Endpoint) endpointKeys {
	p := n.prefix + "ep:" + e.ID + ":"
	return endpointKeys{due: p + "due", dead: p + "dead", attempts: p + "attempts", errors: p + "errors", gone: p + "gone"}
}

func (n *Notifier) bodiesKey() string { return n.prefix + "bodies" }
func (n *Notifier) refsKey() string   { return n.prefix + "refs" }
func (n *Notifier) storedKey() string { return n.prefix + "stored" }

// dropRefLua is shared by the scripts: one endpoint lets go of a
// notification, and the last one takes its body with it.
const dropRefLua = `
local function dropRef(bodies, refs, stored, id)
  if redis.call('HINCRBY', refs, id, -1) <= 0 then
    redis.call('HDEL', refs, id)
    redis.call('HDEL', bodies, id)
    redis.call('ZREM', stored, id)
  end
end
`

// storeScript queues notifications for every endpoint not stopped by a
// 410 Gone under the current configuration, and forgets those stored
// longer than KeepFor ago.
//
//	KEYS[1] bodies   KEYS[2] refs   KEYS[3] stored
//	KEYS[4], KEYS[5] due and gone of endpoint 1; KEYS[6], KEYS[7] of endpoint 2; …
//	ARGV[1] configuration fingerprint   ARGV[2] now (µs)   ARGV[3] forget stored before (µs)
//	ARGV[4..] triples: id, due score (µs), lane "\n" body
//
// Returns {queued, forgotten}: how many (notification, endpoint) pairs it
// queued, and how many notifications it forgot. A notification whose id
// is still stored (its event was redone after a drain died between Store
// and the ack) is not queued again. The body is stored once, with the
// count of endpoints holding it. Forgetting takes the body: an endpoint's
// entry without one is dropped when claimed (claimScript), and this works
// for endpoints no longer configured too, whose entries are never
// claimed. At most pruneBatch are forgotten a call.
var storeScript = rueidis.NewLuaScript(`
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[3], 'LIMIT', 0, ` + pruneBatch + `)
for _, id in ipairs(expired) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
local live = {}
for i = 4, #KEYS, 2 do
  if redis.call('GET', KEYS[i + 1]) ~= ARGV[1] then
    live[#live + 1] = KEYS[i]
  end
end
local queued = 0
if #live > 0 then
  for j = 4, #ARGV, 3 do
    local id = ARGV[j]
    if redis.call('HSETNX', KEYS[1], id, ARGV[j + 2]) == 1 then
      redis.call('HSET', KEYS[2], id, #live)
      redis.call('ZADD', KEYS[3], ARGV[2], id)
      for _, due in ipairs(live) do
        redis.call('ZADD', due, ARGV[j + 1], id)
      end
      queued = queued + #live
    end
  end
end
return {queued, #expired}
`)

// KeepFor is the longest a notification is kept, delivered or not (and a
// dead one for `notify redrive`): its body may hold an activity, which
// Strava's API policy lets us keep for 7 days at most.
const KeepFor = 7 * 24 * time.Hour

// pruneBatch bounds how many expired notifications one script forgets.
const pruneBatch = "100"

// storeChunk bounds one script run: Redis serves nobody else meanwhile.
const storeChunk = 100

// Store queues ns for every endpoint, in order, in one round trip. When it
// returns nil they are in Redis.
func (n *Notifier) Store(ctx context.Context, ns []Notification) error {
	if !n.Enabled() || len(ns) == 0 {
		return nil
	}
	keys := []string{n.bodiesKey(), n.refsKey(), n.storedKey()}
	for _, e := range n.cfg.Endpoints {
		k := n.keysOf(e)
		keys = append(keys, k.due, k.gone)
	}
	now := n.cfg.Now()
	// One µs apart to keep their order, the last one due now.
	first := micros(now) - int64(len(ns))
	var execs []rueidis.LuaExec
	for start := 0; start < len(ns); start += storeChunk {
		args := []string{n.cfg.Fingerprint, itoa(micros(now)), itoa(micros(now.Add(-KeepFor)))}
		for i, nt := range ns[start:min(start+storeChunk, len(ns))] {
			args = append(args, nt.ID, itoa(first+int64(start+i)), nt.Lane+"\n"+string(nt.Body))
		}
		execs = append(execs, rueidis.LuaExec{Keys: keys, Args: args})
	}
	var errs []error
	forgotten := int64(0)
	for _, res := range storeScript.ExecMulti(ctx, n.client, execs...) {
		vals, err := res.AsIntSlice()
		if err == nil && len(vals) != 2 {
			err = fmt.Errorf("unexpected reply %v", vals)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		forgotten += vals[1]
	}
	if forgotten > 0 {
		n.logger.Warn("notifications stored more than 7 days ago forgotten, delivered or not (Strava lets us keep activity data 7 days)",
			"forgotten", forgotten)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store %d notifications: %w", len(ns), err)
	}
	return nil
}

// claimScript leases up to max due notifications of one endpoint, oldest
// first, and forgets dead ones that died more than KeepFor ago.
//
//	KEYS[1] due   KEYS[2] bodies   KEYS[3] attempts   KEYS[4] gone
//	KEYS[5] dead   KEYS[6] errors   KEYS[7] refs   KEYS[8] stored
//	ARGV[1] now (µs)   ARGV[2] lease score (µs)   ARGV[3] max   ARGV[4] configuration fingerprint
//	ARGV[5] forget dead before (µs)
//
// Returns {'gone'} when the endpoint answered 410 Gone under this
// configuration, else a flat list: id, due score, lane "\n" body,
// attempts, … Moving the score to the lease end in the same script as the
// read makes two drains' claims disjoint; the lease score (unique to the
// claim) is what settleScript checks before touching an entry. An entry
// whose body was forgotten (storeScript, after KeepFor) is dropped, not
// returned. Pruning here, at most pruneBatch a claim, costs no round trip
// of its own.
var claimScript = rueidis.NewLuaScript(dropRefLua + `
local expired = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[5], 'LIMIT', 0, ` + pruneBatch + `)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[5], id)
  redis.call('HDEL', KEYS[6], id)
  dropRef(KEYS[2], KEYS[7], KEYS[8], id)
end
if redis.call('GET', KEYS[4]) == ARGV[4] then
  return {'gone'}
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for i = 1, #due, 2 do
  local id = due[i]
  local body = redis.call('HGET', KEYS[2], id)
  if body then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = id
    out[#out + 1] = due[i + 1]
    out[#out + 1] = body
    out[#out + 1] = redis.call('HGET', KEYS[3], id) or '0'
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[6], id)
  end
end
return out
`)

// claimed is one leased notification.
type claimed struct {
	id, score, lane string
	body            []byte
	attempts        int
}

var errGone = errors.New("endpoint stopped by 410 Gone")

func (n *Notifier) claim(ctx context.Context, e Endpoint, lease string) ([]claimed, error) {
	k := n.keysOf(e)
	now := n.cfg.Now()
	flat, err := claimScript.Exec(ctx, n.client,
		[]string{k.due, n.bodiesKey(), k.attempts, k.gone, k.dead, k.errors, n.refsKey(), n.storedKey()},
		[]string{itoa(micros(now)), lease, strconv.Itoa(n.cfg.BatchSize), n.cfg.Fingerprint, itoa(micros(now.Add(-KeepFor)))},
	).ToArray()
	if err != nil {
		return nil, fmt.Errorf("claim notifications for %s: %w", e.Redacted(), err)
	}
	if len(flat) == 1 {
		return nil, errGone
	}
	out := make([]claimed, 0, len(flat)/4)
	for i := 0; i+3 < len(flat); i += 4 {
		id, err1 := flat[i].ToString()
		score, err2 := flat[i+1].ToString()
		stored, err3 := flat[i+2].ToString()
		attempts, err4 := flat[i+3].ToString()
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return nil, fmt.Errorf("claim notifications for %s: unexpected reply: %w", e.Redacted(), err)
		}
		lane, body, _ := strings.Cut(stored, "\n")
		a, _ := strconv.Atoi(attempts)
		out = append(out, claimed{id: id, score: score, lane: lane, body: []byte(body), attempts: a})
	}
	return out, nil
}

// settleScript records how one claim's deliveries went.
//
//	KEYS[1] due   KEYS[2] dead   KEYS[3] attempts   KEYS[4] errors
//	KEYS[5] bodies   KEYS[6] refs   KEYS[7] gone   KEYS[8] stored
//	ARGV[1] the claim's lease score   ARGV[2] now (µs: the died-at score)
//	ARGV[3] configuration fingerprint when the endpoint answered 410 Gone, else ''
//	ARGV[4] the error recorded for what the 410 buries
//	ARGV[5..] quadruples: id, outcome, score, error, where outcome is
//	  ok (delivered: forgotten, and the body once no endpoint holds it),
//	  retry (due again at score, one more attempt counted),
//	  dead (buried with error), back (not attempted: due again at score,
//	  its place before the claim)
//
// Returns {delivered, retrying, dead}. An entry no longer at this claim's
// lease score was taken over by another drain after the lease ended (or
// redriven): that drain's word counts. A 410 stops the endpoint and buries
// everything still due for it, so `notify redrive` can send it later.
var settleScript = rueidis.NewLuaScript(dropRefLua + `
local function bury(id, err)
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], ARGV[2], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('HSET', KEYS[4], id, err)
end
local lease = tonumber(ARGV[1])
local delivered, retrying, dead = 0, 0, 0
for i = 5, #ARGV, 4 do
  local id, outcome = ARGV[i], ARGV[i + 1]
  if tonumber(redis.call('ZSCORE', KEYS[1], id)) == lease then
    if outcome == 'ok' then
      redis.call('ZREM', KEYS[1], id)
      redis.call('HDEL', KEYS[3], id)
      redis.call('HDEL', KEYS[4], id)
      dropRef(KEYS[5], KEYS[6], KEYS[8], id)
      delivered = delivered + 1
    elseif outcome == 'retry' then
      redis.call('ZADD', KEYS[1], ARGV[i + 2], id)
      redis.call('HINCRBY', KEYS[3], id, 1)
      redis.call('HSET', KEYS[4], id, ARGV[i + 3])
      retrying = retrying + 1
    elseif outcome == 'dead' then
      bury(id, ARGV[i + 3])
      dead = dead + 1
    else
      redis.call('ZADD', KEYS[1], ARGV[i + 2], id)
    end
  end
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[7], ARGV[3])
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    bury(id, ARGV[4])
    dead = dead + 1
  end
end
return {delivered, retrying, dead}
`)

// outcome of one delivery, as settleScript takes it.
type outcome struct {
	id, op, score, err string
}

type settled struct{ delivered, retrying, dead int }

func (n *Notifier) settle(ctx context.Context, e Endpoint, lease string, outs []outcome, gone string) (settled, error) {
	k := n.keysOf(e)
	args := []string{lease, itoa(micros(n.cfg.Now())), "", ""}
	if gone != "" {
		args[2], args[3] = n.cfg.Fingerprint, gone
	}
	for _, o := range outs {
		args = append(args, o.id, o.op, o.score, o.err)
	}
	vals, err := settleScript.Exec(ctx, n.client,
		[]string{k.due, k.dead, k.attempts, k.errors, n.bodiesKey(), n.refsKey(), k.gone, n.storedKey()}, args).AsIntSlice()
	if err == nil && len(vals) != 3 {
		err = fmt.Errorf("unexpected reply %v", vals)
	}
	if err != nil {
		return settled{}, fmt.Errorf("record deliveries to %s: %w", e.Redacted(), err)
	}
	return settled{int(vals[0]), int(vals[1]), int(vals[2])}, nil
}

// redriveScript moves up to ARGV[2] dead notifications of one endpoint
// back to due, with a clean slate, and lifts a 410 Gone stop.
//
//	KEYS[1] dead   KEYS[2] due   KEYS[3] errors   KEYS[4] gone
//	ARGV[1] now (µs)   ARGV[2] batch size
//
// Returns how many it moved. They keep the order they died in.
var redriveScript = rueidis.NewLuaScript(`
redis.call('DEL', KEYS[4])
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], ARGV[1], id)
  redis.call('HDEL', KEYS[3], id)
end
return #ids
`)

const redriveBatch = 500

// Redrive moves every dead notification of every configured endpoint back
// to pending and lifts 410 Gone stops. It returns how many it moved.
func (n *Notifier) Redrive(ctx context.Context) (int, error) {
	total := 0
	for _, e := range n.cfg.Endpoints {
		k := n.keysOf(e)
		for {
			moved, err := redriveScript.Exec(ctx, n.client, []string{k.dead, k.due, k.errors, k.gone},
				[]string{itoa(micros(n.cfg.Now())), strconv.Itoa(redriveBatch)}).AsInt64()
			if err != nil {
				return total, fmt.Errorf("redrive notifications of %s: %w", e.Redacted(), err)
			}
			total += int(moved)
			if moved < redriveBatch {
				break
			}
		}
	}
	return total, nil
}

// EndpointStats are one endpoint's counts.
type EndpointStats struct {
	URL string `json:"url"` // redacted
	// Pending were never attempted; Retrying failed before and wait for
	// their next attempt; both include those a drain is delivering now.
	Pending  int64 `json:"pending"`
	Retrying int64 `json:"retrying"`
	Dead     int64 `json:"dead"`
	// Stopped says the endpoint answered 410 Gone under this configuration.
	Stopped bool `json:"stopped"`
}

// Stats counts every configured endpoint's notifications in one round
// trip.
func (n *Notifier) Stats(ctx context.Context) ([]EndpointStats, error) {
	b := n.client.B()
	var cmds rueidis.Commands
	for _, e := range n.cfg.Endpoints {
		k := n.keysOf(e)
		cmds = append(cmds, b.Zcard().Key(k.due).Build(), b.Hlen().Key(k.attempts).Build(),
			b.Zcard().Key(k.dead).Build(), b.Get().Key(k.gone).Build())
	}
	if len(cmds) == 0 {
		return nil, nil
	}
	res := n.client.DoMulti(ctx, cmds...)
	out := make([]EndpointStats, len(n.cfg.Endpoints))
	for i, e := range n.cfg.Endpoints {
		r := res[4*i : 4*i+4]
		due, err1 := r[0].AsInt64()
		retrying, err2 := r[1].AsInt64()
		dead, err3 := r[2].AsInt64()
		gone, err4 := r[3].ToString()
		if rueidis.IsRedisNil(err4) {
			err4 = nil
		}
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return nil, fmt.Errorf("count notifications of %s: %w", e.Redacted(), err)
		}
		out[i] = EndpointStats{URL: e.Redacted(), Pending: max(due-retrying, 0), Retrying: retrying, Dead: dead,
			Stopped: gone != "" && gone == n.cfg.Fingerprint}
	}
	return out, nil
}
