package readapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stravahook/stravahook/lib/respond"
	"github.com/stravahook/stravahook/lib/secretcmp"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
)

// MinTokenLength is the shortest READ_TOKEN that enables the read API.
const MinTokenLength = 16

// DefaultLimit and MaxLimit bound how many activities one answer lists.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// GeoJSONType is the media type of an RFC 7946 answer.
const GeoJSONType = "application/geo+json"

// readTimeout bounds the Redis reads of one answer.
const readTimeout = 5 * time.Second

// Lister reads kept activities; *store.Store is one.
type Lister interface {
	ListActivities(ctx context.Context, q store.ActivityQuery) ([]strava.DetailedActivity, error)
}

// NewHandler serves GET /api/activities to callers presenting
// "Authorization: Bearer <token>". A token shorter than MinTokenLength
// (unset included) turns the route off: it answers 404 and logs how to
// turn it on.
func NewHandler(token string, activities Lister, logger *slog.Logger) http.Handler {
	h := &handler{activities: activities, logger: logger}
	switch {
	case token == "":
		h.off = "GET /api/activities is off: set READ_TOKEN (at least 16 characters, e.g. from `openssl rand -hex 24`) to turn it on"
	case len(token) < MinTokenLength:
		h.off = fmt.Sprintf("GET /api/activities is off: READ_TOKEN has %d characters, it needs at least %d", len(token), MinTokenLength)
	default:
		h.token = token
	}
	return h
}

type handler struct {
	activities Lister
	logger     *slog.Logger
	token      string // READ_TOKEN, when the route is on
	off        string // why the route is off, when it is
}

// query is a request's parameters, checked.
type query struct {
	store.ActivityQuery
	geoJSON bool
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.off != "" {
		h.logger.LogAttrs(r.Context(), slog.LevelWarn, h.off, slog.String("route", "/api/activities"), slog.Int("status", http.StatusNotFound))
		respond.Error(w, http.StatusNotFound, "not found")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		respond.Error(w, http.StatusMethodNotAllowed, "method not allowed: use GET")
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="stravahook"`)
		respond.Error(w, http.StatusUnauthorized, "unauthorized: send Authorization: Bearer <READ_TOKEN>")
		return
	}
	q, err := parseQuery(r)
	if err != nil {
		respond.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
	defer cancel()
	acts, err := h.activities.ListActivities(ctx, q.ActivityQuery)
	if err != nil {
		h.logger.LogAttrs(r.Context(), slog.LevelError, "list activities",
			slog.String("route", "/api/activities"), slog.Int("status", http.StatusServiceUnavailable), slog.String("error", err.Error()))
		w.Header().Set("Retry-After", "5")
		respond.Error(w, http.StatusServiceUnavailable, "the kept activities cannot be read right now; see the logs")
		return
	}
	contentType, encode := "application/json", AppendJSON
	if q.geoJSON {
		contentType, encode = GeoJSONType, AppendGeoJSON
	}
	body, err := encode(nil, acts)
	if err != nil {
		h.logger.LogAttrs(r.Context(), slog.LevelError, "encode activities",
			slog.String("route", "/api/activities"), slog.Int("status", http.StatusInternalServerError), slog.String("error", err.Error()))
		respond.Error(w, http.StatusInternalServerError, "could not encode the activities")
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
	header := w.Header()
	header.Set("ETag", etag)
	// Private: the answer is for the token's holder. No-cache: always
	// revalidated, as a new activity can arrive any minute.
	header.Set("Cache-Control", "private, no-cache")
	header.Set("Vary", "Accept, Authorization")
	header.Set("X-Content-Type-Options", "nosniff")
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	header.Set("Content-Type", contentType)
	header.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (h *handler) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return secretcmp.Equal(strings.TrimSpace(token), h.token)
}

// parseQuery checks the parameters; its error is the 400's reason.
func parseQuery(r *http.Request) (query, error) {
	values := r.URL.Query()
	q := query{ActivityQuery: store.ActivityQuery{Limit: DefaultLimit}}
	for name, vals := range values {
		if len(vals) > 1 {
			return query{}, fmt.Errorf("parameter %s is given %d times; give it once", name, len(vals))
		}
	}
	if v := values.Get("athlete"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return query{}, fmt.Errorf("athlete must be an athlete id (a positive integer), got %q", v)
		}
		q.AthleteID = id
	}
	if v := values.Get("since"); v != "" {
		since, err := parseSince(v)
		if err != nil {
			return query{}, err
		}
		q.Since = since
	}
	if v := values.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			return query{}, fmt.Errorf("limit must be an integer from 1 to %d, got %q", MaxLimit, v)
		}
		q.Limit = n
	}
	switch v := values.Get("format"); v {
	case "json":
	case "geojson":
		q.geoJSON = true
	case "":
		q.geoJSON = acceptsGeoJSON(r.Header.Values("Accept"))
	default:
		return query{}, fmt.Errorf("format must be json or geojson, got %q", v)
	}
	return q, nil
}

// parseSince reads RFC 3339 or unix seconds. A space stands for the + of
// an offset: typed unencoded in a URL (?since=…T09:00:00+01:00), it
// arrives decoded as one.
func parseSince(v string) (time.Time, error) {
	if strings.Trim(v, "0123456789") == "" {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err == nil {
			return time.Unix(secs, 0).UTC(), nil
		}
	} else if t, err := time.Parse(time.RFC3339, strings.Replace(v, " ", "+", 1)); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("since must be an RFC 3339 time (2026-03-01T07:00:00Z) or unix seconds, got %q", v)
}

// acceptsGeoJSON reports whether an Accept header prefers GeoJSON to
// JSON, by q-value (RFC 9110 12.5.1): GeoJSON's q must be above 0 and at
// least that of JSON (application/json, else application/*, else */*); on
// a tie with application/json itself, the one listed first wins.
func acceptsGeoJSON(accept []string) bool {
	geoQ, geoAt := -1.0, -1
	jsonQ, jsonAt, jsonSpecific := -1.0, -1, 0 // specific: 3 exact, 2 application/*, 1 */*
	at := 0
	for _, line := range accept {
		for _, item := range strings.Split(line, ",") {
			mediaType, params, err := mime.ParseMediaType(strings.TrimSpace(item))
			if err != nil {
				continue
			}
			at++
			q := 1.0
			if v, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(v, 64); err != nil {
					continue
				}
			}
			specific := 0
			switch mediaType {
			case GeoJSONType:
				if geoAt < 0 {
					geoQ, geoAt = q, at
				}
				continue
			case "application/json":
				specific = 3
			case "application/*":
				specific = 2
			case "*/*":
				specific = 1
			default:
				continue
			}
			if specific > jsonSpecific {
				jsonQ, jsonAt, jsonSpecific = q, at, specific
			}
		}
	}
	switch {
	case geoQ <= 0:
		return false
	case geoQ != jsonQ:
		return geoQ > jsonQ
	default:
		return jsonSpecific < 3 || geoAt < jsonAt
	}
}

// etagMatches applies If-None-Match's weak comparison (RFC 9110 13.1.2).
func etagMatches(ifNoneMatch, etag string) bool {
	for _, tag := range strings.Split(ifNoneMatch, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}
