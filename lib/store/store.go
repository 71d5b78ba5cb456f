// Package store owns what stravahook keeps in Redis besides the event queue:
// each connected athlete's OAuth tokens (and the lock that keeps two drains
// from refreshing the same athlete at once), the activities fetched from
// Strava (each with a TTL, as Strava's API policy allows at most 7 days),
// and the small shared state a drain needs: until when Strava's rate limit
// holds us back, and the id of our push subscription.
//
// Every key lives under the prefix given to New ({id} is a decimal id):
//
//	key                        type    TTL                           holds
//	athletes                   SET     none                          the id of every stored athlete
//	athlete:{id}               HASH    none                          name, tokens, expiry, scope, connected/updated times
//	athlete:{id}:refresh_lock  STRING  15 s                          random token of the caller refreshing this athlete
//	athlete:{id}:activities    ZSET    MaxKeep, reset on each write  kept activity ids, scored by start time (unix s)
//	activity:{id}              STRING  ≤ MaxKeep                     JSON of strava.DetailedActivity
//	ratelimited_until          STRING  expires at the time it holds  unix ms at which Strava's rate-limit window ends
//	subscription_id            STRING  none                          the id of our push subscription
//	prompt_drain               STRING  the drain's longest run       random token of the prompt drain running now
//	prompt_drain_wanted        STRING  a few seconds                 "another prompt drain was asked for meanwhile"
//	last_drain                 STRING  none                          JSON of the last drain's time, trigger and counts
//	oauth_state:{sha256}       STRING  the state's lifetime          "1": an OAuth state already used
//
// Multi-key updates are Lua scripts (one round trip, atomic), each declaring
// every key it touches in KEYS. Keys are not hash-tagged: stravahook talks
// to a single Redis (Upstash, or the embedded one), never a cluster.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Key names, each appended to the Store's prefix; the package doc's table
// says what each holds.
const (
	keyAthleteIDs       = "athletes"                // SET of ids
	keyAthlete          = "athlete:%d"              // HASH, fields: the field* consts
	keyRefreshLock      = "athlete:%d:refresh_lock" // STRING, PX refreshLockTTL
	keyActivityIndex    = "athlete:%d:activities"   // ZSET id → start (unix s), PX MaxKeep
	keyActivity         = "activity:"               // + id: STRING JSON, PX ≤ MaxKeep
	keyRateLimitedUntil = "ratelimited_until"       // STRING unix ms, PXAT itself
	keySubscriptionID   = "subscription_id"         // STRING id
	keyPromptDrain      = "prompt_drain"            // STRING token, PX the lease
	keyPromptWanted     = "prompt_drain_wanted"     // STRING "1", PX how long to keep watching
	keyLastDrain        = "last_drain"              // STRING JSON of LastDrain
	keyOAuthState       = "oauth_state:"            // + hex SHA-256 of the state: STRING "1", PX its lifetime
)

// ErrNotFound is returned (wrapped) when the athlete or activity asked for
// is not stored.
var ErrNotFound = errors.New("not stored")

// Store reads and writes stravahook's athletes, activities and shared state
// in Redis. It is safe for concurrent use, also by several processes
// sharing one Redis.
type Store struct {
	client rueidis.Client
	prefix string

	// Now is the store's clock (token expiry, timestamps); tests replace it
	// before first use. New sets it to time.Now.
	Now func() time.Time

	// lockBusy, when set, is called (with the waiting caller's ctx and how
	// long it waits before looking again) each time a caller finds another
	// one holding the refresh lock. Tests use it to know that callers really
	// overlap, and how often a waiting caller looks.
	lockBusy func(ctx context.Context, wait time.Duration)

	// sleep, when set, replaces time.Sleep for the pause between tries to
	// save a refreshed token; tests record it instead of waiting.
	sleep func(time.Duration)
}

// New returns a Store keeping everything under prefix (e.g. "stravahook:").
func New(client rueidis.Client, prefix string) *Store {
	return &Store{client: client, prefix: prefix, Now: time.Now}
}

func (s *Store) athleteIDsKey() string          { return s.prefix + keyAthleteIDs }
func (s *Store) athleteKey(id int64) string     { return s.prefix + fmt.Sprintf(keyAthlete, id) }
func (s *Store) refreshLockKey(id int64) string { return s.prefix + fmt.Sprintf(keyRefreshLock, id) }
func (s *Store) activityIndexKey(athleteID int64) string {
	return s.prefix + fmt.Sprintf(keyActivityIndex, athleteID)
}
func (s *Store) activityKey(member string) string { return s.prefix + keyActivity + member }
func (s *Store) rateLimitedUntilKey() string      { return s.prefix + keyRateLimitedUntil }
func (s *Store) subscriptionIDKey() string        { return s.prefix + keySubscriptionID }

func formatID(id int64) string { return strconv.FormatInt(id, 10) }

// setRateLimitedUntilScript stores the end of a rate-limit window unless a
// later one is already stored.
//
//	KEYS[1] ratelimited_until
//	ARGV[1] the window's end, unix ms
//
// Atomic because two drains can hit the limit at once (one the 15-minute
// window, one the daily): a read-compare-write from the client could let
// the earlier end overwrite the later one.
var setRateLimitedUntilScript = rueidis.NewLuaScript(`
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
`)

// RateLimitedUntil is when the Strava rate-limit window that stopped a drain
// ends; the zero time when none is remembered.
func (s *Store) RateLimitedUntil(ctx context.Context) (time.Time, error) {
	ms, err := s.client.Do(ctx, s.client.B().Get().Key(s.rateLimitedUntilKey()).Build()).AsInt64()
	if rueidis.IsRedisNil(err) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read rate-limit end from redis: %w", err)
	}
	return time.UnixMilli(ms).UTC(), nil
}

// SetRateLimitedUntil remembers that no drain may call Strava before until.
// The key expires at until. A later end already stored is kept; an end
// already past is ignored.
func (s *Store) SetRateLimitedUntil(ctx context.Context, until time.Time) error {
	if !until.After(s.Now()) {
		return nil
	}
	err := setRateLimitedUntilScript.Exec(ctx, s.client,
		[]string{s.rateLimitedUntilKey()},
		[]string{strconv.FormatInt(until.UnixMilli(), 10)}).Error()
	if err != nil {
		return fmt.Errorf("store rate-limit end in redis: %w", err)
	}
	return nil
}

// SubscriptionID is the push subscription id the CLI remembered when it
// created the subscription; 0 when none is remembered.
func (s *Store) SubscriptionID(ctx context.Context) (int64, error) {
	id, err := s.client.Do(ctx, s.client.B().Get().Key(s.subscriptionIDKey()).Build()).AsInt64()
	if rueidis.IsRedisNil(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read subscription id from redis: %w", err)
	}
	return id, nil
}

// SetSubscriptionID remembers our push subscription's id.
func (s *Store) SetSubscriptionID(ctx context.Context, id int64) error {
	if id <= 0 {
		return fmt.Errorf("store subscription id %d: not a valid id", id)
	}
	err := s.client.Do(ctx, s.client.B().Set().Key(s.subscriptionIDKey()).Value(formatID(id)).Build()).Error()
	if err != nil {
		return fmt.Errorf("store subscription id %d in redis: %w", id, err)
	}
	return nil
}

// ClearSubscriptionID forgets the push subscription's id (after it was
// deleted at Strava).
func (s *Store) ClearSubscriptionID(ctx context.Context) error {
	if err := s.client.Do(ctx, s.client.B().Del().Key(s.subscriptionIDKey()).Build()).Error(); err != nil {
		return fmt.Errorf("clear subscription id in redis: %w", err)
	}
	return nil
}

// SpendState records that an OAuth state was used and reports whether this
// was its first use; the record lives for ttl (the state's own lifetime).
// The state is stored hashed: the key names nothing a reader could replay.
func (s *Store) SpendState(ctx context.Context, state string, ttl time.Duration) (first bool, err error) {
	sum := sha256.Sum256([]byte(state))
	key := s.prefix + keyOAuthState + hex.EncodeToString(sum[:])
	err = s.client.Do(ctx, s.client.B().Set().Key(key).Value("1").Nx().Px(ttl).Build()).Error()
	if rueidis.IsRedisNil(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record the oauth state as used in redis: %w", err)
	}
	return true, nil
}
