package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
	"github.com/stravahook/stravahook/lib/strava"
)

// fakeStrava stands in for strava.Client.RefreshToken: it counts calls,
// rotates both tokens on each, and can be made to block or fail.
type fakeStrava struct {
	calls   atomic.Int32
	gotMu   sync.Mutex
	got     []string      // refresh tokens it was called with
	release chan struct{} // when set, each call waits for it to close
	err     error         // when set, each call fails with it
	during  func()        // when set, runs inside each call
}

func (f *fakeStrava) refresh(ctx context.Context, refreshToken string) (*strava.Token, error) {
	n := f.calls.Add(1)
	f.gotMu.Lock()
	f.got = append(f.got, refreshToken)
	f.gotMu.Unlock()
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.during != nil {
		f.during()
	}
	if f.err != nil {
		return nil, f.err
	}
	return &strava.Token{
		AccessToken:  fmt.Sprintf("access-%d", n),
		RefreshToken: fmt.Sprintf("refresh-%d", n),
		ExpiresAt:    time.Now().Add(6 * time.Hour).Truncate(time.Second),
	}, nil
}

// refusal is how the fake reports Strava's 400 on a refresh.
type refusal struct{ code string }

func (e *refusal) Error() string { return "strava refused the refresh token: " + e.code }

func saveAthlete(t *testing.T, s *Store, a Athlete) {
	t.Helper()
	if err := s.SaveAthlete(testCtx(t), a); err != nil {
		t.Fatalf("SaveAthlete: %v", err)
	}
}

func expiredAthlete(id int64) Athlete {
	return Athlete{
		ID: id, Name: "Jane Doe",
		AccessToken: "old-access", RefreshToken: "old-refresh",
		ExpiresAt: time.Now().Add(-time.Minute),
		Scope:     "read,activity:read_all",
	}
}

// storedTokens reads the athlete's hash straight from Redis.
func storedTokens(t *testing.T, s *Store, r *rdbtest.Redis, id int64) map[string]string {
	t.Helper()
	h, err := r.Client.Do(testCtx(t), r.Client.B().Hgetall().Key(s.athleteKey(id)).Build()).AsStrMap()
	if err != nil {
		t.Fatalf("HGETALL athlete %d: %v", id, err)
	}
	return h
}

func assertLockFree(t *testing.T, s *Store, r *rdbtest.Redis, id int64) {
	t.Helper()
	n, err := r.Client.Do(testCtx(t), r.Client.B().Exists().Key(s.refreshLockKey(id)).Build()).AsInt64()
	if err != nil || n != 0 {
		t.Errorf("refresh lock of athlete %d still there (EXISTS = %d, %v)", id, n, err)
	}
}

type waiterKey struct{}

// overlap makes the stores' lock waiters report themselves (by the
// waiterKey in their context); the returned channel closes once `want`
// distinct callers have found the lock taken.
func overlap(want int, stores ...*Store) <-chan struct{} {
	var (
		mu   sync.Mutex
		seen = map[any]bool{}
		done = make(chan struct{})
	)
	for _, s := range stores {
		s.lockBusy = func(ctx context.Context, _ time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			w := ctx.Value(waiterKey{})
			if seen[w] {
				return
			}
			seen[w] = true
			if len(seen) == want {
				close(done)
			}
		}
	}
	return done
}

func TestAccessTokenFreshTokenIsUsedWithoutRefresh(t *testing.T) {
	s, _ := newStore(t)
	a := expiredAthlete(1)
	a.AccessToken, a.ExpiresAt = "fresh-access", time.Now().Add(time.Hour)
	saveAthlete(t, s, a)
	f := &fakeStrava{}

	tok, err := s.AccessToken(testCtx(t), 1, f.refresh)
	if err != nil || tok != "fresh-access" {
		t.Fatalf("AccessToken = %q, %v; want fresh-access", tok, err)
	}
	if n := f.calls.Load(); n != 0 {
		t.Errorf("refresh called %d times; want 0", n)
	}
}

func TestAccessTokenExpiringWithinMarginRefreshesAndPersists(t *testing.T) {
	s, r := newStore(t)
	a := expiredAthlete(1)
	a.ExpiresAt = time.Now().Add(RefreshMargin - time.Minute) // not expired yet, but within the margin
	saveAthlete(t, s, a)
	f := &fakeStrava{}

	tok, err := s.AccessToken(testCtx(t), 1, f.refresh)
	if err != nil || tok != "access-1" {
		t.Fatalf("AccessToken = %q, %v; want access-1", tok, err)
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("refresh called %d times; want 1", n)
	}
	if f.got[0] != "old-refresh" {
		t.Errorf("refresh called with %q; want the stored old-refresh", f.got[0])
	}
	h := storedTokens(t, s, r, 1)
	if h["access_token"] != "access-1" || h["refresh_token"] != "refresh-1" {
		t.Errorf("stored tokens = %q, %q; want access-1, refresh-1", h["access_token"], h["refresh_token"])
	}
	got, err := s.Athlete(testCtx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ExpiresAt.After(time.Now().Add(5*time.Hour)) || got.Name != "Jane Doe" || got.Scope != a.Scope {
		t.Errorf("athlete after refresh = %#v; want the new expiry, name and scope kept", got)
	}
	assertLockFree(t, s, r, 1)

	// The next call uses the refreshed token.
	if tok, err := s.AccessToken(testCtx(t), 1, f.refresh); err != nil || tok != "access-1" || f.calls.Load() != 1 {
		t.Errorf("second AccessToken = %q, %v after %d refreshes; want access-1 and no new refresh", tok, err, f.calls.Load())
	}
}

func TestAccessTokenConcurrentCallersRefreshOnce(t *testing.T) {
	s, r := newStore(t)
	saveAthlete(t, s, expiredAthlete(1))
	const callers = 10
	// The refresh holds until every other caller is waiting on the lock, so
	// all ten really overlap.
	f := &fakeStrava{release: make(chan struct{})}
	all := overlap(callers-1, s)
	go func() { <-all; close(f.release) }()

	tokens := make([]string, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			ctx := context.WithValue(testCtx(t), waiterKey{}, i)
			tokens[i], errs[i] = s.AccessToken(ctx, 1, f.refresh)
		})
	}
	wg.Wait()

	if n := f.calls.Load(); n != 1 {
		t.Errorf("refresh called %d times; want 1", n)
	}
	for i := range callers {
		if errs[i] != nil || tokens[i] != "access-1" {
			t.Errorf("caller %d got %q, %v; want access-1", i, tokens[i], errs[i])
		}
	}
	if h := storedTokens(t, s, r, 1); h["refresh_token"] != "refresh-1" {
		t.Errorf("stored refresh token = %q; want refresh-1", h["refresh_token"])
	}
	assertLockFree(t, s, r, 1)
}

func TestAccessTokenTwoDrainsRefreshOnce(t *testing.T) {
	r := rdbtest.New(t)
	// Two processes: separate clients, separate Stores, one Redis.
	drainA := New(r.Client, r.Prefix)
	drainB := New(rdbtest.Dial(t, r.URL), r.Prefix)
	saveAthlete(t, drainA, expiredAthlete(1))
	f := &fakeStrava{release: make(chan struct{})}
	both := overlap(1, drainA, drainB)
	go func() { <-both; close(f.release) }()

	var tokA, tokB string
	var errA, errB error
	var wg sync.WaitGroup
	wg.Go(func() {
		tokA, errA = drainA.AccessToken(context.WithValue(testCtx(t), waiterKey{}, "A"), 1, f.refresh)
	})
	wg.Go(func() {
		tokB, errB = drainB.AccessToken(context.WithValue(testCtx(t), waiterKey{}, "B"), 1, f.refresh)
	})
	wg.Wait()

	if n := f.calls.Load(); n != 1 {
		t.Errorf("refresh called %d times; want 1", n)
	}
	if errA != nil || errB != nil || tokA != "access-1" || tokB != "access-1" {
		t.Errorf("drains got %q, %v and %q, %v; want access-1 for both", tokA, errA, tokB, errB)
	}
}

func TestAccessTokenRefreshRefusedReturnsErrorAndKeepsTokens(t *testing.T) {
	s, r := newStore(t)
	saveAthlete(t, s, expiredAthlete(1))
	f := &fakeStrava{err: &refusal{code: "invalid"}}

	tok, err := s.AccessToken(testCtx(t), 1, f.refresh)
	var refused *refusal
	if err == nil || !errors.As(err, &refused) || refused.code != "invalid" {
		t.Fatalf("AccessToken = %q, %v; want the refusal, wrapped", tok, err)
	}
	if errors.Is(err, ErrNotFound) {
		t.Errorf("refusal %v also reads as ErrNotFound", err)
	}
	h := storedTokens(t, s, r, 1)
	if h["access_token"] != "old-access" || h["refresh_token"] != "old-refresh" {
		t.Errorf("stored tokens after refusal = %q, %q; want them unchanged", h["access_token"], h["refresh_token"])
	}
	assertLockFree(t, s, r, 1)

	// The lock was released: the next call tries again at once.
	if _, err := s.AccessToken(testCtx(t), 1, f.refresh); err == nil || f.calls.Load() != 2 {
		t.Errorf("second AccessToken: err %v after %d calls; want another refusal from a 2nd call", err, f.calls.Load())
	}
}

func TestAccessTokenUnknownAthlete(t *testing.T) {
	s, _ := newStore(t)
	f := &fakeStrava{}
	if _, err := s.AccessToken(testCtx(t), 404, f.refresh); !errors.Is(err, ErrNotFound) {
		t.Errorf("AccessToken of unknown athlete: %v; want ErrNotFound", err)
	}
	if _, err := s.ForceRefresh(testCtx(t), 404, "x", f.refresh); !errors.Is(err, ErrNotFound) {
		t.Errorf("ForceRefresh of unknown athlete: %v; want ErrNotFound", err)
	}
	if n := f.calls.Load(); n != 0 {
		t.Errorf("refresh called %d times; want 0", n)
	}
}

// An athlete deauthorized (removed) while their token was being refreshed
// stays removed: the refreshed tokens are not written back.
func TestAccessTokenAthleteRemovedDuringRefresh(t *testing.T) {
	s, r := newStore(t)
	saveAthlete(t, s, expiredAthlete(1))
	f := &fakeStrava{}
	f.during = func() {
		if _, err := s.RemoveAthlete(testCtx(t), 1); err != nil {
			t.Errorf("RemoveAthlete: %v", err)
		}
	}

	if _, err := s.AccessToken(testCtx(t), 1, f.refresh); !errors.Is(err, ErrNotFound) {
		t.Errorf("AccessToken = %v; want ErrNotFound", err)
	}
	if h := storedTokens(t, s, r, 1); len(h) != 0 {
		t.Errorf("athlete hash recreated after removal: %v", h)
	}
}

// Strava has invalidated the old refresh token once it answers, so the new
// one is saved even if the caller's context ended meanwhile.
func TestAccessTokenRotatedTokenSavedWhenCallerGivesUp(t *testing.T) {
	s, r := newStore(t)
	saveAthlete(t, s, expiredAthlete(1))
	ctx, cancel := context.WithCancel(testCtx(t))
	f := &fakeStrava{during: cancel}

	_, _ = s.AccessToken(ctx, 1, f.refresh)
	if h := storedTokens(t, s, r, 1); h["refresh_token"] != "refresh-1" {
		t.Errorf("stored refresh token = %q; want refresh-1 saved despite the cancelled context", h["refresh_token"])
	}
	assertLockFree(t, s, r, 1)
}

// If Redis goes away after Strava answered, the token is not handed out as
// if all were well: the caller learns the rotation was not saved.
func TestAccessTokenSaveFailsAfterRefresh(t *testing.T) {
	r := rdbtest.New(t)
	proxy := rdbtest.NewProxy(t, rdbtest.HostPort(t, r.URL))
	s := New(rdbtest.Dial(t, proxy.URL()), r.Prefix)
	saveAthlete(t, s, expiredAthlete(1))
	f := &fakeStrava{during: proxy.Cut}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := s.AccessToken(ctx, 1, f.refresh)
	if err == nil || !strings.Contains(err.Error(), "save refreshed token") {
		t.Errorf("AccessToken = %q, %v with the save failing; want the failed save reported", tok, err)
	}
}

func TestAccessTokenWaitEndsWithContext(t *testing.T) {
	s, r := newStore(t)
	saveAthlete(t, s, expiredAthlete(1))
	// A drain holds the lock (and will for longer than we wait).
	err := r.Client.Do(testCtx(t), r.Client.B().Set().Key(s.refreshLockKey(1)).Value("other-drain").Px(time.Minute).Build()).Error()
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeStrava{}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()

	if _, err := s.AccessToken(ctx, 1, f.refresh); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("AccessToken = %v; want the context's deadline", err)
	}
	if n := f.calls.Load(); n != 0 {
		t.Errorf("refresh called %d times while another drain held the lock; want 0", n)
	}
	if v, _ := r.Client.Do(testCtx(t), r.Client.B().Get().Key(s.refreshLockKey(1)).Build()).ToString(); v != "other-drain" {
		t.Errorf("lock = %q; want the other drain's lock untouched", v)
	}
}

// A drain that died holding the lock blocks the others only until the
// lock's TTL runs out.
func TestAccessTokenLockOfCrashedDrainExpires(t *testing.T) {
	s, r := newStore(t)
	saveAthlete(t, s, expiredAthlete(1))
	err := r.Client.Do(testCtx(t), r.Client.B().Set().Key(s.refreshLockKey(1)).Value("dead-drain").Px(refreshLockTTL).Build()).Error()
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	s.lockBusy = func(context.Context, time.Duration) {
		once.Do(func() { expireNow(t, r, s.refreshLockKey(1)) })
	}
	f := &fakeStrava{}

	tok, err := s.AccessToken(testCtx(t), 1, f.refresh)
	if err != nil || tok != "access-1" || f.calls.Load() != 1 {
		t.Errorf("AccessToken = %q, %v after %d refreshes; want access-1 after 1", tok, err, f.calls.Load())
	}
}

// A refresh refused because the athlete reconnected meanwhile (a new
// refresh token saved without the lock) is not reported as a refusal.
func TestAccessTokenRefusedAfterReconnectUsesNewTokens(t *testing.T) {
	s, _ := newStore(t)
	saveAthlete(t, s, expiredAthlete(1))
	f := &fakeStrava{err: &refusal{code: "invalid"}}
	f.during = func() {
		a := expiredAthlete(1)
		a.AccessToken, a.RefreshToken, a.ExpiresAt = "reconnected-access", "reconnected-refresh", time.Now().Add(6*time.Hour)
		saveAthlete(t, s, a)
	}

	tok, err := s.AccessToken(testCtx(t), 1, f.refresh)
	if err != nil || tok != "reconnected-access" {
		t.Errorf("AccessToken = %q, %v; want reconnected-access", tok, err)
	}
}

func TestForceRefresh(t *testing.T) {
	s, r := newStore(t)
	a := expiredAthlete(1)
	a.AccessToken, a.ExpiresAt = "rejected-access", time.Now().Add(time.Hour)
	saveAthlete(t, s, a)
	f := &fakeStrava{}

	// Strava answered 401 to a token that has not expired: refresh anyway.
	tok, err := s.ForceRefresh(testCtx(t), 1, "rejected-access", f.refresh)
	if err != nil || tok != "access-1" || f.calls.Load() != 1 {
		t.Fatalf("ForceRefresh = %q, %v after %d refreshes; want access-1 after 1", tok, err, f.calls.Load())
	}
	if h := storedTokens(t, s, r, 1); h["refresh_token"] != "refresh-1" {
		t.Errorf("stored refresh token = %q; want refresh-1", h["refresh_token"])
	}

	// Another drain got the same 401 with the same old token: by now it was
	// refreshed, so no second Strava call.
	tok, err = s.ForceRefresh(testCtx(t), 1, "rejected-access", f.refresh)
	if err != nil || tok != "access-1" || f.calls.Load() != 1 {
		t.Errorf("ForceRefresh after another refreshed = %q, %v after %d refreshes; want access-1, still 1", tok, err, f.calls.Load())
	}
	assertLockFree(t, s, r, 1)
}

func TestForceRefreshConcurrentDrainsRefreshOnce(t *testing.T) {
	r := rdbtest.New(t)
	drainA := New(r.Client, r.Prefix)
	drainB := New(rdbtest.Dial(t, r.URL), r.Prefix)
	a := expiredAthlete(1)
	a.AccessToken, a.ExpiresAt = "rejected-access", time.Now().Add(time.Hour)
	saveAthlete(t, drainA, a)
	f := &fakeStrava{release: make(chan struct{})}
	both := overlap(1, drainA, drainB)
	go func() { <-both; close(f.release) }()

	var tokA, tokB string
	var errA, errB error
	var wg sync.WaitGroup
	wg.Go(func() {
		tokA, errA = drainA.ForceRefresh(context.WithValue(testCtx(t), waiterKey{}, "A"), 1, "rejected-access", f.refresh)
	})
	wg.Go(func() {
		tokB, errB = drainB.ForceRefresh(context.WithValue(testCtx(t), waiterKey{}, "B"), 1, "rejected-access", f.refresh)
	})
	wg.Wait()

	if n := f.calls.Load(); n != 1 {
		t.Errorf("refresh called %d times; want 1", n)
	}
	if errA != nil || errB != nil || tokA != "access-1" || tokB != "access-1" {
		t.Errorf("drains got %q, %v and %q, %v; want access-1 for both", tokA, errA, tokB, errB)
	}
}
