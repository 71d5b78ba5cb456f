package connect

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The state cookie. Path /api/ reaches the callback and nothing outside
// the API; SameSite=Lax still sends it on Strava's top-level redirect back
// to us, and keeps it off cross-site subrequests.
const (
	StateCookieName = "stravahook_connect_state"
	stateCookiePath = "/api/"
	// StateTTL is how long an athlete may spend on Strava's authorize page.
	StateTTL = 10 * time.Minute
)

// stateBytes is the state's entropy: 256 bits, base64url-encoded to 43
// characters.
const stateBytes = 32

// The cookie's value is "<state>.<expiry, unix s>.<mac>", mac being
// HMAC-SHA256 over the state and the expiry: the expiry cannot be extended
// nor the state swapped without the key. base64url never contains a dot.
func newState() (string, error) {
	b := make([]byte, stateBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func stateMAC(key []byte, state, expiry string) []byte {
	m := hmac.New(sha256.New, key)
	// NUL-separated: neither part can contain one, so no two (state,
	// expiry) pairs hash the same input.
	m.Write([]byte("connect-state\x00" + state + "\x00" + expiry))
	return m.Sum(nil)
}

func signState(key []byte, state string, expires time.Time) string {
	expiry := strconv.FormatInt(expires.Unix(), 10)
	return state + "." + expiry + "." + base64.RawURLEncoding.EncodeToString(stateMAC(key, state, expiry))
}

// Why a callback's state was refused; each is its own logged outcome.
var (
	errStateNoCookie = errors.New("no state cookie in this browser")
	errStateForged   = errors.New("state cookie not signed by us")
	errStateExpired  = errors.New("state cookie expired")
	errStateMismatch = errors.New("state does not match this browser's state cookie")
	errStateReplayed = errors.New("state already used by an earlier callback")
)

// checkState verifies that cookieValue is a cookie we signed, not expired
// at now, holding state.
func checkState(key []byte, cookieValue, state string, now time.Time) error {
	if cookieValue == "" {
		return errStateNoCookie
	}
	parts := strings.Split(cookieValue, ".")
	if len(parts) != 3 {
		return errStateForged
	}
	value, expiry, mac := parts[0], parts[1], parts[2]
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil || !hmac.Equal(got, stateMAC(key, value, expiry)) {
		return errStateForged
	}
	secs, err := strconv.ParseInt(expiry, 10, 64)
	if err != nil {
		return errStateForged // signed by us, so unreachable; refuse anyway
	}
	if !now.Before(time.Unix(secs, 0)) {
		return errStateExpired
	}
	if subtle.ConstantTimeCompare([]byte(value), []byte(state)) != 1 {
		return errStateMismatch
	}
	return nil
}

func setStateCookie(w http.ResponseWriter, value string, secure bool) {
	http.SetCookie(w, &http.Cookie{
		Name:     StateCookieName,
		Value:    value,
		Path:     stateCookiePath,
		MaxAge:   int(StateTTL / time.Second),
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// clearStateCookie spends the state: a second use of the same redirect
// finds no cookie.
func clearStateCookie(w http.ResponseWriter, secure bool) {
	http.SetCookie(w, &http.Cookie{
		Name:     StateCookieName,
		Value:    "",
		Path:     stateCookiePath,
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// checkStateCookies is checkState over every state cookie the browser
// sent (an older one, under another path, may come along): one valid
// cookie holding state is enough.
func checkStateCookies(key []byte, r *http.Request, state string, now time.Time) error {
	err := errStateNoCookie
	for _, c := range r.CookiesNamed(StateCookieName) {
		if err = checkState(key, c.Value, state, now); err == nil {
			return nil
		}
	}
	return err
}
