package strava

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRateLimit(t *testing.T) {
	tests := []struct {
		name      string
		headers   map[string]string
		want      RateLimit
		known     bool
		exhausted bool
	}{
		{
			name: "documented example",
			headers: map[string]string{
				"X-RateLimit-Limit": "200,2000", "X-RateLimit-Usage": "12,340",
				"X-ReadRateLimit-Limit": "100,1000", "X-ReadRateLimit-Usage": "8,210",
			},
			want:  documentedRateLimit,
			known: true,
		},
		{
			name:    "overall only (older answers)",
			headers: map[string]string{"X-RateLimit-Limit": "600,30000", "X-RateLimit-Usage": "314,27536"},
			want:    RateLimit{Limit15: 600, LimitDaily: 30000, Usage15: 314, UsageDaily: 27536},
			known:   true,
		},
		{
			name:    "spaces are tolerated",
			headers: map[string]string{"X-RateLimit-Limit": " 200 , 2000 ", "X-RateLimit-Usage": "1, 2"},
			want:    RateLimit{Limit15: 200, LimitDaily: 2000, Usage15: 1, UsageDaily: 2},
			known:   true,
		},
		{
			name:      "15-minute limit reached",
			headers:   map[string]string{"X-RateLimit-Limit": "200,2000", "X-RateLimit-Usage": "200,340"},
			want:      RateLimit{Limit15: 200, LimitDaily: 2000, Usage15: 200, UsageDaily: 340},
			known:     true,
			exhausted: true,
		},
		{
			name: "read limit passed (requests over the limit still count)",
			headers: map[string]string{
				"X-RateLimit-Limit": "200,2000", "X-RateLimit-Usage": "101,340",
				"X-ReadRateLimit-Limit": "100,1000", "X-ReadRateLimit-Usage": "101,210",
			},
			want: RateLimit{
				Limit15: 200, LimitDaily: 2000, Usage15: 101, UsageDaily: 340,
				ReadLimit15: 100, ReadLimitDaily: 1000, ReadUsage15: 101, ReadUsageDaily: 210,
			},
			known:     true,
			exhausted: true,
		},
		{name: "no headers", headers: nil, want: RateLimit{}},
		{
			name:    "malformed parts read as zero",
			headers: map[string]string{"X-RateLimit-Limit": "abc,2000", "X-RateLimit-Usage": "-3", "X-ReadRateLimit-Limit": "100"},
			want:    RateLimit{LimitDaily: 2000, ReadLimit15: 100},
			known:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			got := ParseRateLimit(h)
			if got != tt.want {
				t.Errorf("ParseRateLimit = %+v, want %+v", got, tt.want)
			}
			if got.Known() != tt.known || got.Exhausted() != tt.exhausted {
				t.Errorf("Known=%v Exhausted=%v, want %v %v", got.Known(), got.Exhausted(), tt.known, tt.exhausted)
			}
		})
	}
}

func TestRateLimitResetAt(t *testing.T) {
	at := func(h, m, s int) time.Time { return time.Date(2024, 3, 9, h, m, s, 0, time.UTC) }
	fifteenExhausted := RateLimit{Limit15: 200, LimitDaily: 2000, Usage15: 200, UsageDaily: 340}
	dailyExhausted := RateLimit{Limit15: 200, LimitDaily: 2000, Usage15: 12, UsageDaily: 2000}
	bothExhausted := RateLimit{Limit15: 200, LimitDaily: 2000, Usage15: 205, UsageDaily: 2005}
	readDailyExhausted := RateLimit{Limit15: 200, LimitDaily: 2000, ReadLimit15: 100, ReadLimitDaily: 1000, ReadUsageDaily: 1000}

	tests := []struct {
		name string
		rl   RateLimit
		now  time.Time
		want time.Time
	}{
		{"15-min exhausted at 12:07", fifteenExhausted, at(12, 7, 0), at(12, 15, 0)},
		{"15-min exhausted exactly at 12:15:00", fifteenExhausted, at(12, 15, 0), at(12, 30, 0)},
		{"15-min exhausted at 12:59:59", fifteenExhausted, at(12, 59, 59), at(13, 0, 0)},
		{"15-min exhausted at 23:50 rolls over the day", fifteenExhausted, at(23, 50, 0), time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC)},
		{"daily exhausted at 23:50", dailyExhausted, at(23, 50, 0), time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC)},
		{"daily exhausted at 00:00:00", dailyExhausted, at(0, 0, 0), time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC)},
		{"both exhausted: the daily window wins", bothExhausted, at(12, 7, 0), time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC)},
		{"read daily exhausted", readDailyExhausted, at(9, 1, 0), time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC)},
		{"nothing exhausted: next quarter", documentedRateLimit, at(12, 31, 0), at(12, 45, 0)},
		{"no headers (a bare 429): next quarter", RateLimit{}, at(12, 44, 59), at(12, 45, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rl.ResetAt(tt.now); !got.Equal(tt.want) {
				t.Errorf("ResetAt(%s) = %s, want %s", tt.now.Format(time.TimeOnly), got, tt.want)
			}
		})
	}
}

func TestNextQuarterHour(t *testing.T) {
	utc := func(h, m, s, ns int) time.Time { return time.Date(2024, 12, 31, h, m, s, ns, time.UTC) }
	tests := []struct{ now, want time.Time }{
		{utc(12, 7, 0, 0), utc(12, 15, 0, 0)},
		{utc(12, 15, 0, 0), utc(12, 30, 0, 0)},
		{utc(12, 14, 59, 999999999), utc(12, 15, 0, 0)},
		{utc(12, 15, 0, 1), utc(12, 30, 0, 0)},
		{utc(12, 45, 0, 0), utc(13, 0, 0, 0)},
		{utc(23, 59, 0, 0), time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		got := NextQuarterHour(tt.now)
		if !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("NextQuarterHour(%s) = %s, want %s", tt.now, got, tt.want)
		}
	}

	// Boundaries are UTC ones even for a clock whose offset is not a
	// multiple of 15 minutes.
	odd := time.FixedZone("odd", 7*60)
	now := time.Date(2024, 6, 1, 12, 7, 0, 0, odd) // 12:00 UTC
	if got, want := NextQuarterHour(now), time.Date(2024, 6, 1, 12, 15, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("NextQuarterHour(%s) = %s, want %s", now, got, want)
	}
}

func TestNextUTCMidnight(t *testing.T) {
	tests := []struct{ now, want time.Time }{
		{time.Date(2024, 3, 9, 23, 50, 0, 0, time.UTC), time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC)},
		{time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 11, 0, 0, 0, 0, time.UTC)},
		{time.Date(2024, 2, 28, 12, 0, 0, 0, time.UTC), time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		{time.Date(2024, 12, 31, 1, 0, 0, 0, time.UTC), time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		// 20:00 in New York on March 9 is already 01:00 UTC on March 10.
		{time.Date(2024, 3, 9, 20, 0, 0, 0, mustLoad(t, "America/New_York")), time.Date(2024, 3, 11, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		got := NextUTCMidnight(tt.now)
		if !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("NextUTCMidnight(%s) = %s, want %s", tt.now, got, tt.want)
		}
	}
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		// No tzdata on this machine: a fixed EST offset tells the same story.
		return time.FixedZone("EST", -5*3600)
	}
	return loc
}
