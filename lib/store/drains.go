package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Prompt drains (lib/promptdrain) take turns: one runs and keeps watching
// the queue while the others, started by the same burst of events, step
// aside after leaving it a note. The note says how long to keep watching;
// the two scripts below make "step aside" and "stop watching" atomic
// against each other, so that no event is left waiting between a drain
// that just stopped and one that stepped aside.

// startPromptDrainScript takes the prompt-drain lease, or leaves its holder
// a note to keep watching.
//
//	KEYS[1] prompt_drain   KEYS[2] prompt_drain_wanted
//	ARGV[1] the new drain's random token   ARGV[2] lease (ms)   ARGV[3] watch for (ms)
//
// Returns 1 when the lease was taken, 0 when another prompt drain holds it
// (the note then lives at least ARGV[3] ms).
var startPromptDrainScript = rueidis.NewLuaScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
end
return 0
`)

// finishPromptDrainScript ends the holder's turn unless a note arrived.
//
//	KEYS[1] prompt_drain   KEYS[2] prompt_drain_wanted
//	ARGV[1] the holder's token   ARGV[2] lease (ms)
//
// Returns the note's remaining ms when there was one (the note is consumed
// and the lease renewed: the holder keeps watching that long), 0 when the
// lease was released, -1 when it was no longer the caller's.
var finishPromptDrainScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local wanted = redis.call('PTTL', KEYS[2])
if wanted > 0 then
  redis.call('DEL', KEYS[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return wanted
end
redis.call('DEL', KEYS[1])
return 0
`)

// releasePromptDrainScript gives the lease up whatever notes wait (the
// holder ran out of time and hands over).
//
//	KEYS[1] prompt_drain
//	ARGV[1] the holder's token
var releasePromptDrainScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

func (s *Store) promptDrainKey() string  { return s.prefix + keyPromptDrain }
func (s *Store) promptWantedKey() string { return s.prefix + keyPromptWanted }
func (s *Store) lastDrainKey() string    { return s.prefix + keyLastDrain }

// StartPromptDrain takes the prompt-drain lease for token (true), or, when
// another prompt drain holds it, asks that one to keep watching the queue
// for at least watch (false).
func (s *Store) StartPromptDrain(ctx context.Context, token string, lease, watch time.Duration) (bool, error) {
	n, err := startPromptDrainScript.Exec(ctx, s.client,
		[]string{s.promptDrainKey(), s.promptWantedKey()},
		[]string{token, strconv.FormatInt(lease.Milliseconds(), 10), strconv.FormatInt(watch.Milliseconds(), 10)},
	).AsInt64()
	if err != nil {
		return false, fmt.Errorf("take the prompt-drain lease: %w", err)
	}
	return n == 1, nil
}

// FinishPromptDrain ends token's turn, unless another prompt drain asked
// for more watching meanwhile: then it returns how long (> 0) and the
// lease, renewed for lease, stays with token. A lease no longer token's
// gives 0 too.
func (s *Store) FinishPromptDrain(ctx context.Context, token string, lease time.Duration) (time.Duration, error) {
	n, err := finishPromptDrainScript.Exec(ctx, s.client,
		[]string{s.promptDrainKey(), s.promptWantedKey()},
		[]string{token, strconv.FormatInt(lease.Milliseconds(), 10)},
	).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("end the prompt drain's turn: %w", err)
	}
	return time.Duration(max(n, 0)) * time.Millisecond, nil
}

// ReleasePromptDrain gives up token's lease, notes or not.
func (s *Store) ReleasePromptDrain(ctx context.Context, token string) error {
	if err := releasePromptDrainScript.Exec(ctx, s.client, []string{s.promptDrainKey()}, []string{token}).Error(); err != nil {
		return fmt.Errorf("release the prompt-drain lease: %w", err)
	}
	return nil
}

// LastDrain is what `queue status` shows of the most recent drain.
type LastDrain struct {
	At         time.Time `json:"at"`
	Trigger    string    `json:"trigger"`
	Claimed    int       `json:"claimed"`
	Kept       int       `json:"kept"`
	Deleted    int       `json:"deleted"`
	DurationMS int64     `json:"duration_ms"`
	Error      string    `json:"error,omitempty"`
}

// SetLastDrain records d as the most recent drain.
func (s *Store) SetLastDrain(ctx context.Context, d LastDrain) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode the last drain: %w", err)
	}
	if err := s.client.Do(ctx, s.client.B().Set().Key(s.lastDrainKey()).Value(string(b)).Build()).Error(); err != nil {
		return fmt.Errorf("record the last drain: %w", err)
	}
	return nil
}

// LastDrain returns the most recent drain recorded, or nil when none was.
func (s *Store) LastDrain(ctx context.Context) (*LastDrain, error) {
	b, err := s.client.Do(ctx, s.client.B().Get().Key(s.lastDrainKey()).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the last drain: %w", err)
	}
	var d LastDrain
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("read the last drain: %w", err)
	}
	return &d, nil
}
