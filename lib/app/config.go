package app

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	BypassSecret        string // VERCEL_AUTOMATION_BYPASS_SECRET, sent as x-vercel-protection-bypass
}

// LoadConfig reads the environment through getenv. It fails only on values
// that are set but malformed; missing values are reported where they are
// needed, so that one route's missing setting does not take down another.
func LoadConfig(getenv func(string) string) (Config, error) {
	c := Config{
		VerifyToken:   getenv("STRAVA_VERIFY_TOKEN"),
		ClientID:      strings.TrimSpace(getenv("STRAVA_CLIENT_ID")),
		ClientSecret:  getenv("STRAVA_CLIENT_SECRET"),
		RedisPrefix:   getenv("STRAVAHOOK_REDIS_PREFIX"),
		CronSecret:    getenv("CRON_SECRET"),
		StravaBaseURL: strings.TrimRight(strings.TrimSpace(getenv("STRAVA_BASE_URL")), "/"),
		PublicURL:     strings.TrimRight(strings.TrimSpace(getenv("PUBLIC_URL")), "/"),
		Scope:         strings.TrimSpace(getenv("STRAVA_SCOPE")),
		NotifyURL:     strings.TrimSpace(getenv("NOTIFY_URL")),
		NotifySecret:  strings.TrimSpace(getenv("NOTIFY_SECRET")),
		ReadToken:     strings.TrimSpace(getenv("READ_TOKEN")),

		PromptDrain:         true,
		VercelEnv:           strings.TrimSpace(getenv("VERCEL_ENV")),
		VercelProductionURL: strings.TrimSpace(getenv("VERCEL_PROJECT_PRODUCTION_URL")),
		BypassSecret:        strings.TrimSpace(getenv("VERCEL_AUTOMATION_BYPASS_SECRET")),
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
	if v := strings.TrimSpace(getenv("STRAVA_SUBSCRIPTION_ID")); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return Config{}, fmt.Errorf("STRAVA_SUBSCRIPTION_ID must be a positive integer, got %q", v)
		}
		c.SubscriptionID = id
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
	return c, nil
}

// PromptDrainBase is where the intake sends its prompt-drain request:
// PUBLIC_URL, else the production domain Vercel names (not under `vercel
// dev`, which serves on localhost), else "" (the event's request tells).
func (c Config) PromptDrainBase() string {
	switch {
	case c.PublicURL != "":
		return c.PublicURL
	case c.VercelProductionURL != "" && c.VercelEnv != "development":
		host := strings.TrimPrefix(strings.TrimPrefix(c.VercelProductionURL, "https://"), "http://")
		return "https://" + strings.TrimRight(host, "/")
	}
	return ""
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
