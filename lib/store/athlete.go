package store

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Athlete is a connected athlete and their OAuth tokens.
//
// Its String, Format, GoString and LogValue never show the tokens, so an
// Athlete can be printed or logged whole. (encoding/json does include them:
// the JSON form is for storage, not for output.)
type Athlete struct {
	ID           int64     `json:"id"`
	Name         string    `json:"name,omitempty"`
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	ExpiresAt    time.Time `json:"expires_at"`
	Scope        string    `json:"scope,omitempty"`
	ConnectedAt  time.Time `json:"connected_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	// ReconnectReason is set when Strava refused the athlete's refresh
	// token: the athlete must connect again (/api/connect) before their
	// events are processed; ReconnectSince is when that was found. Saving
	// the athlete again (a new connection) clears both.
	ReconnectReason string    `json:"reconnect_reason,omitempty"`
	ReconnectSince  time.Time `json:"reconnect_since,omitzero"`
}

// NeedsReconnect says Strava refused the athlete's refresh token.
func (a Athlete) NeedsReconnect() bool { return a.ReconnectReason != "" }

// String is "athlete 123 (Jane Doe)", or "athlete 123" without a name.
func (a Athlete) String() string {
	if a.Name == "" {
		return "athlete " + formatID(a.ID)
	}
	return "athlete " + formatID(a.ID) + " (" + a.Name + ")"
}

// Format makes every fmt verb (%v, %+v, %s, %q, …) print String, and %#v
// print GoString, so no verb reaches the token fields.
func (a Athlete) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, a.GoString())
	case verb == 'q':
		fmt.Fprint(f, strconv.Quote(a.String()))
	default:
		fmt.Fprint(f, a.String())
	}
}

// GoString is the Go syntax of a with both tokens replaced by "REDACTED".
func (a Athlete) GoString() string {
	redact := func(token string) string {
		if token == "" {
			return ""
		}
		return "REDACTED"
	}
	return fmt.Sprintf("store.Athlete{ID:%d, Name:%q, AccessToken:%q, RefreshToken:%q, ExpiresAt:%q, Scope:%q, ConnectedAt:%q, UpdatedAt:%q}",
		a.ID, a.Name, redact(a.AccessToken), redact(a.RefreshToken),
		formatTime(a.ExpiresAt), a.Scope, formatTime(a.ConnectedAt), formatTime(a.UpdatedAt))
}

// LogValue logs the athlete without its tokens.
func (a Athlete) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int64("id", a.ID),
		slog.String("name", a.Name),
		slog.Time("expires_at", a.ExpiresAt),
		slog.String("scope", a.Scope),
	)
}

// Field names of the athlete:{id} hash.
const (
	fieldID           = "id"
	fieldName         = "name"
	fieldAccessToken  = "access_token"
	fieldRefreshToken = "refresh_token"
	fieldExpiresAt    = "expires_at"
	fieldScope        = "scope"
	fieldConnectedAt  = "connected_at"
	fieldUpdatedAt    = "updated_at"
	// fieldReconnectReason's presence marks an athlete who must reconnect;
	// queue.Hold is guarded by it (ReconnectGuard).
	fieldReconnectReason = "reconnect_reason"
	fieldReconnectSince  = "reconnect_since"
)

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

func athleteFromHash(h map[string]string) (Athlete, error) {
	id, err := strconv.ParseInt(h[fieldID], 10, 64)
	if err != nil {
		return Athlete{}, fmt.Errorf("field %s: %w", fieldID, err)
	}
	a := Athlete{
		ID:           id,
		Name:         h[fieldName],
		AccessToken:  h[fieldAccessToken],
		RefreshToken: h[fieldRefreshToken],
		Scope:        h[fieldScope],

		ReconnectReason: h[fieldReconnectReason],
	}
	for field, dst := range map[string]*time.Time{
		fieldExpiresAt:      &a.ExpiresAt,
		fieldConnectedAt:    &a.ConnectedAt,
		fieldUpdatedAt:      &a.UpdatedAt,
		fieldReconnectSince: &a.ReconnectSince,
	} {
		if *dst, err = parseTime(h[field]); err != nil {
			return Athlete{}, fmt.Errorf("field %s: %w", field, err)
		}
	}
	return a, nil
}

// saveAthleteScript replaces an athlete's hash and lists the id.
//
//	KEYS[1] athlete:{id}
//	KEYS[2] athletes
//	ARGV[1] the athlete id
//	ARGV[2] connected_at to use when the caller gave none and none is stored
//	ARGV[3..] field, value, … (connected_at is absent when the caller gave none)
//
// Atomic so that the list of athletes never names one whose hash is missing
// or half-written, and so that the stored connected_at survives a
// reconnect that does not know it.
var saveAthleteScript = rueidis.NewLuaScript(`
local connected = redis.call('HGET', KEYS[1], 'connected_at')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if redis.call('HEXISTS', KEYS[1], 'connected_at') == 0 then
  redis.call('HSET', KEYS[1], 'connected_at', connected or ARGV[2])
end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
`)

// SaveAthlete stores a (replacing what was stored for a.ID, so a
// "reconnect needed" mark is cleared). UpdatedAt is set to now; a zero ConnectedAt keeps the stored one, or is now for a new
// athlete. A refresh token is required: without it the athlete could never
// be read again once the access token expires.
func (s *Store) SaveAthlete(ctx context.Context, a Athlete) error {
	if a.ID <= 0 {
		return fmt.Errorf("save athlete %d: not a valid id", a.ID)
	}
	if a.RefreshToken == "" {
		return fmt.Errorf("save %s: no refresh token", a)
	}
	now := s.Now()
	args := []string{
		formatID(a.ID),
		formatTime(now),
		fieldID, formatID(a.ID),
		fieldName, a.Name,
		fieldAccessToken, a.AccessToken,
		fieldRefreshToken, a.RefreshToken,
		fieldExpiresAt, formatTime(a.ExpiresAt),
		fieldScope, a.Scope,
		fieldUpdatedAt, formatTime(now),
	}
	if !a.ConnectedAt.IsZero() {
		args = append(args, fieldConnectedAt, formatTime(a.ConnectedAt))
	}
	err := saveAthleteScript.Exec(ctx, s.client, []string{s.athleteKey(a.ID), s.athleteIDsKey()}, args).Error()
	if err != nil {
		return fmt.Errorf("save %s in redis: %w", a, err)
	}
	return nil
}

// ReconnectGuard is the hash key and field whose presence marks the
// athlete as needing to reconnect: the queue holds their events only while
// it is there (queue.Guard).
func (s *Store) ReconnectGuard(athleteID int64) (key, field string) {
	return s.athleteKey(athleteID), fieldReconnectReason
}

// Athlete returns the stored athlete id, or an error wrapping ErrNotFound.
func (s *Store) Athlete(ctx context.Context, id int64) (Athlete, error) {
	h, err := s.client.Do(ctx, s.client.B().Hgetall().Key(s.athleteKey(id)).Build()).AsStrMap()
	if err != nil {
		return Athlete{}, fmt.Errorf("read athlete %d from redis: %w", id, err)
	}
	if len(h) == 0 {
		return Athlete{}, fmt.Errorf("athlete %d: %w", id, ErrNotFound)
	}
	a, err := athleteFromHash(h)
	if err != nil {
		return Athlete{}, fmt.Errorf("decode athlete %d: %w", id, err)
	}
	return a, nil
}

// Athletes returns every stored athlete, sorted by id.
func (s *Store) Athletes(ctx context.Context) ([]Athlete, error) {
	ids, err := s.athleteIDs(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	cmds := make(rueidis.Commands, 0, len(ids))
	for _, id := range ids {
		cmds = append(cmds, s.client.B().Hgetall().Key(s.athleteKey(id)).Build())
	}
	athletes := make([]Athlete, 0, len(ids))
	for i, res := range s.client.DoMulti(ctx, cmds...) {
		h, err := res.AsStrMap()
		if err != nil {
			return nil, fmt.Errorf("read athlete %d from redis: %w", ids[i], err)
		}
		if len(h) == 0 {
			continue // removed between SMEMBERS and HGETALL
		}
		a, err := athleteFromHash(h)
		if err != nil {
			return nil, fmt.Errorf("decode athlete %d: %w", ids[i], err)
		}
		athletes = append(athletes, a)
	}
	return athletes, nil
}

// removeAthleteScript deletes an athlete's tokens and a batch of their kept
// activities.
//
//	KEYS[1] athlete:{id}
//	KEYS[2] athletes
//	KEYS[3] athlete:{id}:activities
//	KEYS[4..] activity:{aid} for each id in ARGV[2..]
//	ARGV[1] the athlete id
//	ARGV[2..] activity ids, as members of KEYS[3]
//
// Returns {activity keys deleted, index entries left}. Atomic so that the
// emptiness check and the deletion of the index see the same index: a
// KeepActivity running at the same time either lands before (and its
// activity is in a later batch) or after (and finds the index gone, which
// it recreates, so the caller's loop sees it).
var removeAthleteScript = rueidis.NewLuaScript(`
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
local removed = 0
for i = 4, #KEYS do
  removed = removed + redis.call('DEL', KEYS[i])
  redis.call('ZREM', KEYS[3], ARGV[i - 2])
end
local left = redis.call('ZCARD', KEYS[3])
if left == 0 then
  redis.call('DEL', KEYS[3])
end
return {removed, left}
`)

// removeBatch bounds how many activity keys one script call declares.
const removeBatch = 500

// RemoveAthlete deletes the athlete's tokens and every activity kept for
// them, and reports how many activities were deleted. Removing an athlete
// that is not stored is not an error.
func (s *Store) RemoveAthlete(ctx context.Context, id int64) (activitiesRemoved int, err error) {
	indexKey := s.activityIndexKey(id)
	// Bounded so that a drain keeping activities for this athlete as fast
	// as we delete them cannot keep us here forever.
	for range 100 {
		members, err := s.client.Do(ctx, s.client.B().Zrange().Key(indexKey).Min("0").Max(strconv.Itoa(removeBatch-1)).Build()).AsStrSlice()
		if err != nil {
			return activitiesRemoved, fmt.Errorf("remove athlete %d: list activities in redis: %w", id, err)
		}
		keys := []string{s.athleteKey(id), s.athleteIDsKey(), indexKey}
		args := []string{formatID(id)}
		for _, m := range members {
			keys = append(keys, s.activityKey(m))
			args = append(args, m)
		}
		res, err := removeAthleteScript.Exec(ctx, s.client, keys, args).AsIntSlice()
		if err != nil {
			return activitiesRemoved, fmt.Errorf("remove athlete %d from redis: %w", id, err)
		}
		activitiesRemoved += int(res[0])
		if res[1] == 0 {
			return activitiesRemoved, nil
		}
	}
	return activitiesRemoved, fmt.Errorf("remove athlete %d: activities are still being kept for them", id)
}
