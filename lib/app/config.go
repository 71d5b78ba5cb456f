package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// DefaultPrefix is where every stravahook key lives in Redis.
const DefaultPrefix = "stravahook:"

// Config is everything read from the environment (README.md lists the
// variables). No field is ever logged whole: several are secrets.
type Config struct {
	VerifyToken    string // STRAVA_VERIFY_TOKEN
	ClientID       string // STRAVA_CLIENT_ID
	ClientSecret   string // STRAVA_CLIENT_SECRET
	SubscriptionID int64  // STRAVA_SUBSCRIPTION_ID, 0 = learn it from Redis
	RedisURL       string // REDIS_URL, else KV_URL
	RedisURLVar    string // which of the two RedisURL came from
	RedisPrefix    string // STRAVAHOOK_REDIS_PREFIX, default DefaultPrefix
	CronSecret     string // CRON_SECRET
	StravaBaseURL  string // STRAVA_BASE_URL, default https://www.strava.com
	QueueUpdates   bool   // STRAVA_QUEUE_UPDATES
	PublicURL      string // PUBLIC_URL
	Scope          string // STRAVA_SCOPE, default read,activity:read_all
	NotifyURL      string // NOTIFY_URL: comma-separated http(s) endpoints (lib/notify)
	NotifySecret   string // NOTIFY_SECRET: whsec_… (space-separated during a rotation)
	ReadToken      string // READ_TOKEN: turns GET /api/activities on (>= 16 characters)

	// Prompt drains (lib/promptdrain).
	PromptDrain         bool   // STRAVAHOOK_PROMPT_DRAIN: on unless "off"
	VercelEnv           string // VERCEL_ENV: production, preview or development
	VercelProductionURL string // VERCEL_PROJECT_PRODUCTION_URL: host of the production domain, no scheme
	VercelURL           string // VERCEL_URL: host of this deployment's own URL, no scheme (set on every deployment)
	BypassSecret        string // VERCEL_AUTOMATION_BYPASS_SECRET, sent as x-vercel-protection-bypass
	// CallbackSecret is STRAVA_CALLBACK_SECRET: when set, Strava's calls
	// are served only at /api/activity_update/<secret>.
	CallbackSecret string
	DeadMaxAge     time.Duration // STRAVAHOOK_DEAD_MAX_AGE, 0 = queue.DefaultDeadMaxAge
	DeadMaxLen     int           // STRAVAHOOK_DEAD_MAX, 0 = queue.DefaultDeadMaxLen
	HeldMax        int           // STRAVAHOOK_HELD_MAX: events held per athlete who must reconnect, 0 = queue.DefaultHeldMax
	// Trimmed names the variables whose values had whitespace around them
	// (a dashboard paste's newline), now removed; LogTrimmed says so.
	Trimmed []string
}

// MinCallbackSecret is the shortest STRAVA_CALLBACK_SECRET accepted.
const MinCallbackSecret = 16

// LogTrimmed warns, once per variable, that whitespace was removed from
// its value; the value itself is never logged.
func (c Config) LogTrimmed(logger *slog.Logger) {
	for _, name := range c.Trimmed {
		logger.Warn("whitespace around the value was removed; check how it was set", "variable", name)
	}
}

// LoadConfig reads the environment through getenv. It fails only on values
// that are set but malformed; missing values are reported where they are
// needed, so that one route's missing setting does not take down another.
func LoadConfig(getenv func(string) string) (Config, error) {
	// Secrets are read trimmed: a value with a stray newline (a dashboard
	// paste) could never match what the other side sends, and nothing
	// would say why.
	var trimmed []string
	secret := func(name string) string {
		raw := getenv(name)
		v := strings.TrimSpace(raw)
		if v != raw {
			trimmed = append(trimmed, name)
		}
		return v
	}
	c := Config{
		VerifyToken:    secret("STRAVA_VERIFY_TOKEN"),
		ClientID:       strings.TrimSpace(getenv("STRAVA_CLIENT_ID")),
		ClientSecret:   secret("STRAVA_CLIENT_SECRET"),
		RedisPrefix:    getenv("STRAVAHOOK_REDIS_PREFIX"),
		CronSecret:     secret("CRON_SECRET"),
		CallbackSecret: secret("STRAVA_CALLBACK_SECRET"),
		StravaBaseURL:  strings.TrimRight(strings.TrimSpace(getenv("STRAVA_BASE_URL")), "/"),
		PublicURL:      strings.TrimRight(strings.TrimSpace(getenv("PUBLIC_URL")), "/"),
		Scope:          strings.TrimSpace(getenv("STRAVA_SCOPE")),
		NotifyURL:      strings.TrimSpace(getenv("NOTIFY_URL")),
		NotifySecret:   secret("NOTIFY_SECRET"),
		ReadToken:      secret("READ_TOKEN"),

		PromptDrain:         true,
		VercelEnv:           strings.TrimSpace(getenv("VERCEL_ENV")),
		VercelProductionURL: strings.TrimSpace(getenv("VERCEL_PROJECT_PRODUCTION_URL")),
		VercelURL:           strings.TrimSpace(getenv("VERCEL_URL")),
		BypassSecret:        secret("VERCEL_AUTOMATION_BYPASS_SECRET"),
	}
	for _, name := range []string{"REDIS_URL", "KV_URL"} {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			c.RedisURL, c.RedisURLVar = v, name
			break
		}
	}
	if c.RedisPrefix == "" {
		c.RedisPrefix = DefaultPrefix
	}
	if c.StravaBaseURL == "" {
		c.StravaBaseURL = "https://www.strava.com"
	}
	if c.Scope == "" {
		c.Scope = "read,activity:read_all"
	}
	var err error
	if c.SubscriptionID, err = positive(getenv, "STRAVA_SUBSCRIPTION_ID", "integer", parseInt64); err != nil {
		return Config{}, err
	}
	if v := strings.TrimSpace(getenv("STRAVA_QUEUE_UPDATES")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("STRAVA_QUEUE_UPDATES must be true or false, got %q", v)
		}
		c.QueueUpdates = b
	}
	switch v := strings.ToLower(strings.TrimSpace(getenv("STRAVAHOOK_PROMPT_DRAIN"))); v {
	case "", "on", "true", "1":
	case "off", "false", "0":
		c.PromptDrain = false
	default:
		return Config{}, fmt.Errorf("STRAVAHOOK_PROMPT_DRAIN must be on or off, got %q", v)
	}
	if err := checkCallbackSecret(c.CallbackSecret); err != nil {
		return Config{}, err
	}
	if c.DeadMaxAge, err = positive(getenv, "STRAVAHOOK_DEAD_MAX_AGE", "duration like 720h", time.ParseDuration); err != nil {
		return Config{}, err
	}
	if c.DeadMaxLen, err = positive(getenv, "STRAVAHOOK_DEAD_MAX", "integer", strconv.Atoi); err != nil {
		return Config{}, err
	}
	if c.HeldMax, err = positive(getenv, "STRAVAHOOK_HELD_MAX", "integer", strconv.Atoi); err != nil {
		return Config{}, err
	}
	c.Trimmed = trimmed
	return c, nil
}

// positive reads the variable name with parse: 0 when unset, an error
// naming the variable and the kind of value wanted when not above 0.
func positive[T int | int64 | time.Duration](getenv func(string) string, name, kind string, parse func(string) (T, error)) (T, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return 0, nil
	}
	n, err := parse(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s must be a positive %s, got %q", name, kind, v)
	}
	return n, nil
}

func parseInt64(v string) (int64, error) { return strconv.ParseInt(v, 10, 64) }

// checkCallbackSecret refuses a callback secret too short to resist
// guessing, or with characters that do not survive in a URL path segment.
// Its errors never hold the value.
func checkCallbackSecret(v string) error {
	if v == "" {
		return nil
	}
	if len(v) < MinCallbackSecret {
		return fmt.Errorf("STRAVA_CALLBACK_SECRET must be at least %d characters (it has %d); e.g. openssl rand -hex 20", MinCallbackSecret, len(v))
	}
	for _, r := range v {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-_.~", r)) {
			return errors.New("STRAVA_CALLBACK_SECRET may hold only letters, digits and - _ . ~ (it becomes a URL path segment); e.g. openssl rand -hex 20")
		}
	}
	return nil
}

// PromptDrainBase is where the intake sends its prompt-drain request,
// which carries CRON_SECRET: PUBLIC_URL, else the production domain Vercel
// names (not under `vercel dev`), else this deployment's own URL
// (VERCEL_URL, set on every deployment; `vercel dev` sets it to its own
// plain-http listening address), else "" (the request's own Host tells,
// never its X-Forwarded-* headers: see baseurl.OwnHost).
func (c Config) PromptDrainBase() string {
	switch {
	case c.PublicURL != "":
		return c.PublicURL
	case c.VercelProductionURL != "" && c.VercelEnv != "development":
		return "https://" + bareHost(c.VercelProductionURL)
	case c.VercelURL != "":
		host := bareHost(c.VercelURL)
		if isLoopback(host) {
			return "http://" + host
		}
		return "https://" + host
	}
	return ""
}

// bareHost is a Vercel URL variable's host: they carry no scheme, but a
// hand-set one might.
func bareHost(v string) string {
	return strings.TrimRight(strings.TrimPrefix(strings.TrimPrefix(v, "https://"), "http://"), "/")
}

// isLoopback says host[:port] names this machine (`vercel dev`).
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// NeedStravaApp says which of our application's credentials, needed by
// every Strava OAuth call, are missing.
func (c Config) NeedStravaApp() error {
	var missing []string
	if c.ClientID == "" {
		missing = append(missing, "STRAVA_CLIENT_ID")
	}
	if c.ClientSecret == "" {
		missing = append(missing, "STRAVA_CLIENT_SECRET")
	}
	if len(missing) > 0 {
		return errors.New(strings.Join(missing, " and ") + " not set: use your API application's values from https://www.strava.com/settings/api")
	}
	return nil
}
