// Package connect owns the pages with which an athlete authorizes
// stravahook at Strava (OAuth 2 authorization-code flow):
//
//   - /api/connect (Start) sends the browser to Strava's authorize page
//     with a random state that is also kept in a signed cookie;
//   - /api/connect_callback (Callback) is where Strava sends the browser
//     back: it checks that the state is the one of this browser, that the
//     athlete granted activity access, exchanges the code for the
//     athlete's tokens and stores them.
//
// The state needs no server-side storage: the cookie carries it, with its
// expiry, under an HMAC keyed by a secret derived from the client secret.
// No token, code or state ever appears in a page, a log line or a URL we
// build (beyond the state on Strava's authorize URL, where it belongs).
package connect

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stravahook/stravahook/lib/baseurl"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
)

// DefaultScope is what Start asks Strava for when Config.Scope is empty:
// activity:read_all so that webhooks for private activities can be served
// too.
const DefaultScope = "read,activity:read_all"

// CallbackPath is where Strava sends the browser back; Start builds the
// redirect_uri from it.
const CallbackPath = "/api/connect_callback"

// Bounds on the calls the callback makes; a browser waits on them.
const (
	ExchangeTimeout = 10 * time.Second
	SaveTimeout     = 5 * time.Second
)

// Config is what the connect pages need from the operator.
type Config struct {
	// PublicURL is PUBLIC_URL, e.g. "https://x.vercel.app". Empty: the base
	// URL is taken from the request (X-Forwarded-Proto and
	// X-Forwarded-Host as Vercel sets them, else r.TLS and r.Host).
	PublicURL string
	// Scope is Strava's comma-separated scope list; empty means DefaultScope.
	Scope string
	// StateSecret keys the state cookie's HMAC (see DeriveStateSecret).
	// Empty: both pages answer 500, STRAVA_CLIENT_SECRET is not set.
	StateSecret []byte
	// ClientIDSet says STRAVA_CLIENT_ID is configured; false: both pages
	// answer 500.
	ClientIDSet bool
	// Now is the clock (state expiry, ConnectedAt); nil means time.Now.
	Now func() time.Time
	// SpendState records that a state was used, reporting first=false when
	// it was already: a replayed callback (the same URL and cookie sent
	// again) is then refused. It must remember the state for at least ttl.
	// Nil: only the cookie's clearing guards against a replay.
	SpendState func(ctx context.Context, state string, ttl time.Duration) (first bool, err error)
}

// OAuth is the part of Strava's OAuth the pages use; *strava.Client
// implements it.
type OAuth interface {
	AuthCodeURL(state, redirectURI, scope string) string
	ExchangeCode(ctx context.Context, code string) (*strava.Token, error)
}

// AthleteSaver stores a connected athlete; *store.Store implements it.
type AthleteSaver interface {
	SaveAthlete(ctx context.Context, a store.Athlete) error
}

// Pages serves /api/connect and /api/connect_callback. Build it with New.
type Pages struct {
	cfg      Config
	scope    string
	oauth    OAuth
	athletes AthleteSaver
	logger   *slog.Logger

	// public is PublicURL parsed; publicErr says why it is unusable.
	public    *origin
	publicErr error
}

// New returns the connect pages. A malformed PublicURL does not fail here:
// both pages then answer 500 and log why.
func New(cfg Config, oauth OAuth, athletes AthleteSaver, logger *slog.Logger) *Pages {
	p := &Pages{cfg: cfg, scope: strings.TrimSpace(cfg.Scope), oauth: oauth, athletes: athletes, logger: logger}
	if p.scope == "" {
		p.scope = DefaultScope
	}
	if p.cfg.Now == nil {
		p.cfg.Now = time.Now
	}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	if raw := strings.TrimSpace(cfg.PublicURL); raw != "" {
		p.public, p.publicErr = parsePublicURL(raw)
	}
	return p
}

// stateSecretLabel separates this use of the client secret from any other.
const stateSecretLabel = "stravahook connect: state cookie key v1"

// DeriveStateSecret is the key for Config.StateSecret, derived from
// STRAVA_CLIENT_SECRET (HMAC-SHA256 of a fixed label) so that no extra
// secret must be configured and the client secret itself never keys
// anything we hand to a browser. An empty client secret gives nil.
func DeriveStateSecret(clientSecret string) []byte {
	if clientSecret == "" {
		return nil
	}
	m := hmac.New(sha256.New, []byte(clientSecret))
	m.Write([]byte(stateSecretLabel))
	return m.Sum(nil)
}

// origin is the base URL the browser reaches us at.
type origin struct {
	base   string // scheme://host[/path], no trailing slash
	secure bool   // https: the state cookie gets Secure
}

func parsePublicURL(raw string) (*origin, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("PUBLIC_URL %q is not an http(s) base URL like https://example.vercel.app", raw)
	}
	return &origin{base: u.Scheme + "://" + u.Host + u.EscapedPath(), secure: u.Scheme == "https"}, nil
}

// origin is PublicURL, else what the request says (see baseurl).
func (p *Pages) origin(r *http.Request) (origin, error) {
	if p.public != nil {
		return *p.public, nil
	}
	base, err := baseurl.FromRequest(r)
	if err != nil {
		return origin{}, err
	}
	return origin{base: base, secure: strings.HasPrefix(base, "https:")}, nil
}

// misconfiguration says which settings the pages lack, or "" when none.
func (p *Pages) misconfiguration() string {
	var missing []string
	if !p.cfg.ClientIDSet {
		missing = append(missing, "STRAVA_CLIENT_ID")
	}
	if len(p.cfg.StateSecret) == 0 {
		missing = append(missing, "STRAVA_CLIENT_SECRET")
	}
	switch len(missing) {
	case 0:
		if p.publicErr != nil {
			return p.publicErr.Error()
		}
		return ""
	case 1:
		return missing[0] + " is not set"
	default:
		return strings.Join(missing, " and ") + " are not set"
	}
}
