// Package notify owns stravahook's outbound notifications: Standard
// Webhooks (https://www.standardwebhooks.com) POSTs to the user's own
// endpoints (NOTIFY_URL), signed with NOTIFY_SECRET, stored durably in
// Redis and delivered, retried and buried per endpoint.
//
// The drain stores a batch's notifications (Store) before it acks the
// events that caused them, so a drain that dies between the two redoes the
// events and stores the same notifications again: their ids derive from
// the events, and a notification still queued is not queued twice. After
// the Strava work it delivers (Deliver): each endpoint on its own
// goroutine, so one that is slow or down holds back neither another nor
// the Strava work. A 2xx within Timeout is delivered; anything else is
// retried with exponential backoff and jitter for about a day
// (MaxAttempts), then dead for that endpoint until `notify redrive`. A
// 410 Gone stops the endpoint (its queued notifications go dead) until
// NOTIFY_URL or NOTIFY_SECRET changes, or `notify redrive`.
//
// Key layout, every key under the prefix given to New:
//
//	bodies            HASH  notification id → lane "\n" body (until no endpoint needs it)
//	refs              HASH  notification id → endpoints still holding it
//	stored            ZSET  notification id → stored at (unix µs): forgotten
//	                        after KeepFor, delivered or not
//	ep:{E}:due        ZSET  id → due at (unix µs): pending (never tried),
//	                        retrying (attempted before) or leased by a drain
//	                        delivering it (due at the lease end)
//	ep:{E}:dead       ZSET  id → died at (unix µs); forgotten after KeepFor
//	ep:{E}:attempts   HASH  id → failed attempts (only while in due)
//	ep:{E}:errors     HASH  id → last error (retrying and dead)
//	ep:{E}:gone       STRING the configuration fingerprint under which E
//	                        answered 410 Gone
//
// where {E} is Endpoint.ID, a hash of the URL (URLs may carry credentials;
// key names are listed by tools that print them). Scores are microseconds
// so that the notifications of one batch keep their order (one µs apart).
// All keys a script touches are passed in KEYS.
package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Notification types: the "type" of each notification's payload.
const (
	TypeActivityCreated     = "activity.created"
	TypeActivityUpdated     = "activity.updated"
	TypeActivityDeleted     = "activity.deleted"
	TypeAthleteDeauthorized = "athlete.deauthorized"
	TypePing                = "ping"
)

// Endpoint is one NOTIFY_URL entry.
type Endpoint struct {
	URL string
	// ID names the endpoint's keys in Redis: a hash of URL.
	ID string
}

// Redacted is URL without credentials or query, for logs and output.
func (e Endpoint) Redacted() string { return redactURL(e.URL) }

// ParseEndpoints parses NOTIFY_URL: http(s) URLs separated by commas
// (spaces around them ignored, duplicates dropped). It returns every valid
// endpoint, and an error naming the entries it could not use.
func ParseEndpoints(s string) ([]Endpoint, error) {
	var eps []Endpoint
	var errs []error
	seen := map[string]bool{}
	for i, raw := range strings.Split(s, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("NOTIFY_URL entry %d (%s) is not an http(s) URL", i+1, redactURL(raw)))
			continue
		}
		if seen[raw] {
			continue
		}
		seen[raw] = true
		sum := sha256.Sum256([]byte(raw))
		eps = append(eps, Endpoint{URL: raw, ID: hex.EncodeToString(sum[:6])})
	}
	return eps, errors.Join(errs...)
}

// redactURL keeps scheme, host and path: user info and query may hold
// credentials.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	out := u.Scheme + "://" + u.Host + u.EscapedPath()
	if u.User != nil {
		out = u.Scheme + "://…@" + u.Host + u.EscapedPath()
	}
	if u.RawQuery != "" {
		out += "?…"
	}
	return out
}

// Notification is one stored notification: its id (the webhook-id of
// every delivery), lane and body.
type Notification struct {
	ID   string
	Type string
	// Lane orders deliveries: one lane's notifications reach an endpoint
	// one after another, in the order stored; different lanes go in
	// parallel. The drain uses the activity (or, for a deauthorization,
	// the athlete).
	Lane string
	Body []byte
}

// NewNotification builds a notification. seed makes the id: the same seed (the event
// that caused it) gives the same id, so a redone event's notification is
// recognised; data is the "data" object's JSON, copied into the body
// byte for byte.
func NewNotification(typ, lane, seed string, at time.Time, data []byte) Notification {
	sum := sha256.Sum256([]byte(typ + "\x00" + seed))
	var body []byte
	body = append(body, `{"type":`...)
	body = strconv.AppendQuote(body, typ)
	body = append(body, `,"timestamp":`...)
	body = strconv.AppendQuote(body, at.UTC().Format(time.RFC3339))
	body = append(body, `,"data":`...)
	body = append(body, data...)
	body = append(body, '}')
	return Notification{ID: "msg_" + hex.EncodeToString(sum[:16]), Type: typ, Lane: lane, Body: body}
}

// ActivityData is the data of activity.created and activity.updated:
// raw is the activity exactly as Strava answered it.
func ActivityData(athleteID, activityID int64, raw []byte) []byte {
	b := []byte(`{"athlete_id":`)
	b = strconv.AppendInt(b, athleteID, 10)
	b = append(b, `,"activity_id":`...)
	b = strconv.AppendInt(b, activityID, 10)
	b = append(b, `,"activity":`...)
	b = append(b, raw...)
	return append(b, '}')
}

// DeletedData is the data of activity.deleted.
func DeletedData(athleteID, activityID int64) []byte {
	return []byte(`{"athlete_id":` + strconv.FormatInt(athleteID, 10) + `,"activity_id":` + strconv.FormatInt(activityID, 10) + `}`)
}

// DeauthorizedData is the data of athlete.deauthorized.
func DeauthorizedData(athleteID int64) []byte {
	return []byte(`{"athlete_id":` + strconv.FormatInt(athleteID, 10) + `}`)
}

// micros is t's score: unix microseconds.
func micros(t time.Time) int64 { return t.UnixMicro() }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
