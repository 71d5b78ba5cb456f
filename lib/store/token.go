package store

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/stravahook/stravahook/lib/strava"
)

// RefreshFunc trades a refresh token for a new token pair; in production it
// is strava.Client.RefreshToken.
type RefreshFunc func(ctx context.Context, refreshToken string) (*strava.Token, error)

// RefreshMargin is how close to its expiry an access token is refreshed
// rather than used: a drain that picks up a token about to expire must not
// see it expire halfway through its Strava calls.
const RefreshMargin = 5 * time.Minute

const (
	// refreshLockTTL frees the lock of a drain that died while refreshing.
	refreshLockTTL = 15 * time.Second
	// refreshTimeout bounds the Strava call made under the lock well inside
	// refreshLockTTL, so the lock cannot expire while we still refresh and
	// let a second drain spend the same (then invalid) refresh token.
	refreshTimeout = 10 * time.Second
	// lockedReadTimeout bounds the read under the lock, so that the read
	// and the refresh together fit in refreshLockTTL.
	lockedReadTimeout = 2 * time.Second
	// cleanupTimeout bounds the Redis writes that must happen even when the
	// caller's context has ended: saving a rotated token, releasing a lock.
	cleanupTimeout = 5 * time.Second

	lockPollMin = 10 * time.Millisecond
	lockPollMax = 250 * time.Millisecond
)

// ErrReconnectNeeded is returned (wrapped) for an athlete whose refresh
// token Strava refused: no token can be had until they connect again.
var ErrReconnectNeeded = errors.New("athlete must reconnect: strava refused their refresh token")

// markReconnectScript marks an athlete as needing to reconnect, unless the
// refresh token Strava refused is no longer the stored one.
//
//	KEYS[1] athlete:{id}
//	ARGV[1] the refused refresh token   ARGV[2] reason   ARGV[3] since (RFC 3339)
//
// Returns 1 when marked, 0 when the athlete is gone or a new refresh token
// was saved meanwhile (they reconnected while we refreshed). Atomic so that
// a reconnection landing at that moment is never marked stale.
var markReconnectScript = rueidis.NewLuaScript(`
if redis.call('HGET', KEYS[1], 'refresh_token') ~= ARGV[1] then
  return 0
end
if redis.call('HEXISTS', KEYS[1], 'reconnect_reason') == 0 then
  redis.call('HSET', KEYS[1], 'reconnect_reason', ARGV[2], 'reconnect_since', ARGV[3])
end
return 1
`)

// releaseLockScript deletes a lock only if we still hold it.
//
//	KEYS[1] athlete:{id}:refresh_lock
//	ARGV[1] the holder's random token
//
// Atomic because our lock may have expired and been taken by another drain
// between a GET and a DEL; deleting theirs would let a third drain in.
var releaseLockScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// saveRefreshedScript stores a refreshed token pair, unless the athlete was
// removed meanwhile.
//
//	KEYS[1] athlete:{id}
//	ARGV[1] access token   ARGV[2] refresh token   ARGV[3] expires at (RFC 3339)
//	ARGV[4] updated at     ARGV[5] scope ("" keeps the stored scope)
//
// Returns 1 when saved, 0 when the athlete is gone. Atomic so that a
// deauthorization (RemoveAthlete) that lands during the refresh is not
// undone by recreating a hash holding only tokens.
//
// It writes whether or not we still hold the lock: Strava invalidated the
// old refresh token when it answered, so the pair it gave us is the only
// one that works.
var saveRefreshedScript = rueidis.NewLuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'access_token', ARGV[1], 'refresh_token', ARGV[2], 'expires_at', ARGV[3], 'updated_at', ARGV[4])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'scope', ARGV[5])
end
return 1
`)

// AccessToken returns a usable access token for the athlete: the stored one
// unless it expires within RefreshMargin, else a refreshed one.
//
// Refreshing happens under a per-athlete lock in Redis, so two callers
// (goroutines or drains) never refresh the same athlete at once: the one
// that takes the lock calls refresh and saves the rotated tokens before
// returning; the others poll, re-reading the athlete, until they find the
// new token (or the lock free again, after a failed refresh, and try
// themselves), or ctx ends.
//
// The error wraps ErrNotFound when the athlete is not stored (or was removed
// during the refresh), and wraps refresh's own error when Strava refuses;
// the caller decides what a refusal means.
func (s *Store) AccessToken(ctx context.Context, athleteID int64, refresh RefreshFunc) (string, error) {
	a, err := s.Athlete(ctx, athleteID)
	if err != nil {
		return "", err
	}
	if a.NeedsReconnect() {
		return "", fmt.Errorf("%s: %w", a, ErrReconnectNeeded)
	}
	usable := func(a Athlete) bool { return !s.expiring(a) }
	if usable(a) {
		return a.AccessToken, nil
	}
	return s.refreshUnderLock(ctx, athleteID, usable, refresh, false)
}

// ForceRefresh refreshes the athlete's token even though it has not expired
// (Strava answered 401 with staleAccessToken). If another caller refreshed
// while we waited for the lock, the stored token differs from
// staleAccessToken and is returned without calling Strava.
func (s *Store) ForceRefresh(ctx context.Context, athleteID int64, staleAccessToken string, refresh RefreshFunc) (string, error) {
	usable := func(a Athlete) bool { return a.AccessToken != staleAccessToken && !s.expiring(a) }
	return s.refreshUnderLock(ctx, athleteID, usable, refresh, false)
}

// ConfirmAuthorization asks Strava for a new token even for an athlete
// marked as needing to reconnect: it is how a deauthorization event is
// confirmed (Strava refuses the refresh) or not (a token comes back).
// Strava's refusal marks the athlete too; the caller decides what else it
// means.
func (s *Store) ConfirmAuthorization(ctx context.Context, athleteID int64, staleAccessToken string, refresh RefreshFunc) (string, error) {
	usable := func(a Athlete) bool {
		return !a.NeedsReconnect() && a.AccessToken != staleAccessToken && !s.expiring(a)
	}
	return s.refreshUnderLock(ctx, athleteID, usable, refresh, true)
}

func (s *Store) expiring(a Athlete) bool {
	return a.AccessToken == "" || !a.ExpiresAt.After(s.Now().Add(RefreshMargin))
}

// refreshUnderLock takes the athlete's refresh lock (SET NX PX), re-reads the
// athlete, and refreshes only if the stored token is still not usable. Callers
// that find the lock taken poll with backoff, re-reading the athlete, until
// the holder has stored a usable token, the lock frees up, or ctx ends.
//
// Unless evenIfReconnectNeeded, an athlete marked as needing to reconnect
// gets ErrReconnectNeeded without a call to Strava.
func (s *Store) refreshUnderLock(ctx context.Context, athleteID int64, usable func(Athlete) bool, refresh RefreshFunc, evenIfReconnectNeeded bool) (string, error) {
	lockKey := s.refreshLockKey(athleteID)
	lockToken := randomToken()
	wait := lockPollMin
	for {
		err := s.client.Do(ctx, s.client.B().Set().Key(lockKey).Value(lockToken).Nx().Px(refreshLockTTL).Build()).Error()
		switch {
		case err == nil:
			defer s.releaseLock(ctx, athleteID, lockToken)
			return s.refreshLocked(ctx, athleteID, usable, refresh, evenIfReconnectNeeded)
		case !rueidis.IsRedisNil(err):
			return "", fmt.Errorf("take token refresh lock of athlete %d in redis: %w", athleteID, err)
		}

		// Another caller is refreshing: wait for its result.
		pause := wait/2 + rand.N(wait/2+1)
		if s.lockBusy != nil {
			s.lockBusy(ctx, pause)
		}
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return "", fmt.Errorf("wait for token refresh of athlete %d: %w", athleteID, context.Cause(ctx))
		case <-timer.C:
		}
		wait = min(2*wait, lockPollMax)
		a, err := s.Athlete(ctx, athleteID)
		if err != nil {
			return "", err
		}
		if usable(a) {
			return a.AccessToken, nil
		}
		if a.NeedsReconnect() && !evenIfReconnectNeeded {
			return "", fmt.Errorf("%s: %w", a, ErrReconnectNeeded)
		}
	}
}

// refreshLocked runs while holding the athlete's refresh lock.
func (s *Store) refreshLocked(ctx context.Context, athleteID int64, usable func(Athlete) bool, refresh RefreshFunc, evenIfReconnectNeeded bool) (string, error) {
	// The previous holder may have refreshed between our read and our lock.
	// The read has its own short deadline: it and the refresh must fit in
	// the lock's life, or a second caller could spend the same refresh
	// token (Strava refuses the second use, which reads as a revocation).
	readCtx, cancelRead := context.WithTimeout(ctx, lockedReadTimeout)
	a, err := s.Athlete(readCtx, athleteID)
	cancelRead()
	if err != nil {
		return "", err
	}
	if usable(a) {
		return a.AccessToken, nil
	}
	if a.NeedsReconnect() && !evenIfReconnectNeeded {
		return "", fmt.Errorf("%s: %w", a, ErrReconnectNeeded)
	}

	refreshCtx, cancel := context.WithTimeout(ctx, refreshTimeout)
	tok, err := refresh(refreshCtx, a.RefreshToken)
	cancel()
	if err == nil && (tok == nil || tok.AccessToken == "") {
		err = errors.New("the answer holds no access token")
	}
	if err != nil {
		// A refresh token saved meanwhile without the lock (the athlete
		// reconnected) makes ours stale, and Strava's refusal says nothing
		// about the athlete: use what was saved.
		if now, readErr := s.Athlete(ctx, athleteID); readErr == nil && now.RefreshToken != a.RefreshToken && usable(now) {
			return now.AccessToken, nil
		}
		if strava.IsRefreshRefused(err) {
			return "", s.markReconnect(ctx, a, err)
		}
		return "", fmt.Errorf("refresh token of %s: %w", a, err)
	}

	// Strava has invalidated the old refresh token: save the new pair even
	// if the caller's context has just ended, or it is lost.
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	refreshToken := tok.RefreshToken
	if refreshToken == "" {
		refreshToken = a.RefreshToken // not rotated
	}
	var saved int64
	for attempt := range 3 { // the old refresh token is dead: losing the new one loses the athlete
		saved, err = saveRefreshedScript.Exec(saveCtx, s.client, []string{s.athleteKey(athleteID)}, []string{
			tok.AccessToken, refreshToken, formatTime(tok.ExpiresAt), formatTime(s.Now()), tok.Scope,
		}).AsInt64()
		if err == nil || saveCtx.Err() != nil {
			break
		}
		pause := time.Duration(attempt+1) * 100 * time.Millisecond
		if s.sleep != nil {
			s.sleep(pause)
		} else {
			time.Sleep(pause)
		}
	}
	if err != nil {
		return "", fmt.Errorf("save refreshed token of %s in redis: %w", a, err)
	}
	if saved == 0 {
		return "", fmt.Errorf("save refreshed token of %s: removed while refreshing: %w", a, ErrNotFound)
	}
	return tok.AccessToken, nil
}

// markReconnect records that Strava refused a's refresh token (refusal),
// and returns the error for the caller: wrapping ErrReconnectNeeded and
// refusal. Strava rotates refresh tokens, so a refusal also follows a drain
// that died after Strava rotated the token and before the new pair was
// saved; that is why a refusal alone never deletes anything.
func (s *Store) markReconnect(ctx context.Context, a Athlete, refusal error) error {
	refused := fmt.Errorf("refresh token of %s: %w: %w", a, ErrReconnectNeeded, refusal)
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err := markReconnectScript.Exec(mctx, s.client, []string{s.athleteKey(a.ID)},
		[]string{a.RefreshToken, oneLineReason(refusal), formatTime(s.Now())}).Error()
	if err != nil {
		return fmt.Errorf("%w (and marking them in redis failed: %w)", refused, err)
	}
	return refused
}

// oneLineReason is what `athlete list` shows: Strava's refusal, short.
func oneLineReason(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return "strava refused the refresh token: " + msg
}

// releaseLock frees the lock early so waiting callers need not sit out its
// TTL; it runs even when ctx has ended. A failure only costs them that wait.
func (s *Store) releaseLock(ctx context.Context, athleteID int64, lockToken string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = releaseLockScript.Exec(ctx, s.client, []string{s.refreshLockKey(athleteID)}, []string{lockToken}).Error()
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}
