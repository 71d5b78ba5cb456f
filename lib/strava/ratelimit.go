package strava

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Strava's rate-limit headers. Each value is "15-minute,daily"; the read
// pair limits GET requests on top of the overall pair.
const (
	headerLimit     = "X-RateLimit-Limit"
	headerUsage     = "X-RateLimit-Usage"
	headerReadLimit = "X-ReadRateLimit-Limit"
	headerReadUsage = "X-ReadRateLimit-Usage"
)

// RateLimit is what Strava's X-RateLimit-Limit/Usage and
// X-ReadRateLimit-Limit/Usage headers said about the application's quota.
// Requests over a limit still count, so usage can exceed its limit.
type RateLimit struct {
	Limit15, LimitDaily, Usage15, UsageDaily                 int // overall
	ReadLimit15, ReadLimitDaily, ReadUsage15, ReadUsageDaily int // read (GET) limits; zero when absent
}

// ParseRateLimit reads Strava's rate-limit headers. A missing or malformed
// value leaves its fields zero.
func ParseRateLimit(h http.Header) RateLimit {
	var r RateLimit
	r.Limit15, r.LimitDaily = parsePair(h.Get(headerLimit))
	r.Usage15, r.UsageDaily = parsePair(h.Get(headerUsage))
	r.ReadLimit15, r.ReadLimitDaily = parsePair(h.Get(headerReadLimit))
	r.ReadUsage15, r.ReadUsageDaily = parsePair(h.Get(headerReadUsage))
	return r
}

// parsePair parses "15-minute,daily"; a part that is not a non-negative
// integer reads as 0.
func parsePair(v string) (fifteen, daily int) {
	if v == "" {
		return 0, 0
	}
	first, second, _ := strings.Cut(v, ",")
	return nonNegative(first), nonNegative(second)
}

func nonNegative(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0
	}
	return max(n, 0)
}

// Known reports whether Strava sent any rate-limit header. Strava's limits
// are never zero, so a RateLimit with every field zero means "no headers"
// (a stand-in, a proxy's error page, a transport failure).
func (r RateLimit) Known() bool {
	return r != RateLimit{}
}

// Exhausted reports whether some window's usage has reached its limit, so
// that the next request in that window would be refused with 429.
func (r RateLimit) Exhausted() bool {
	return r.exhausted15() || r.exhaustedDaily()
}

func (r RateLimit) exhausted15() bool {
	return atLimit(r.Usage15, r.Limit15) || atLimit(r.ReadUsage15, r.ReadLimit15)
}

func (r RateLimit) exhaustedDaily() bool {
	return atLimit(r.UsageDaily, r.LimitDaily) || atLimit(r.ReadUsageDaily, r.ReadLimitDaily)
}

func atLimit(usage, limit int) bool { return limit > 0 && usage >= limit }

// ResetAt says when the exhausted window ends: the next 00:00 UTC when a
// daily limit is used up (it outlasts any 15-minute window), else the next
// quarter-hour boundary. When nothing is exhausted — typically a 429 that
// came without usable headers — it is the next quarter hour too, the
// earliest moment Strava could answer differently.
func (r RateLimit) ResetAt(now time.Time) time.Time {
	if r.exhaustedDaily() {
		return NextUTCMidnight(now)
	}
	return NextQuarterHour(now)
}

// NextQuarterHour is the next :00, :15, :30 or :45 UTC strictly after now,
// where Strava's 15-minute windows end.
func NextQuarterHour(now time.Time) time.Time {
	// Truncate works on absolute time, and quarter hours divide a UTC day,
	// so this aligns to UTC boundaries whatever now's location.
	return now.UTC().Truncate(15 * time.Minute).Add(15 * time.Minute)
}

// NextUTCMidnight is the next 00:00 UTC strictly after now, where Strava's
// daily window ends.
func NextUTCMidnight(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}
