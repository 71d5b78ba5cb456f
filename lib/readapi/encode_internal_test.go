package readapi

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// appendDegrees writes what strconv's shortest formatting of the float
// v/1e5 writes (what a float-based encoder would), for every magnitude and
// sign a coordinate takes.
func TestAppendDegreesIsTheShortestFloat(t *testing.T) {
	values := []int{0, 1, -1, 10, 100_000, -100_000, 9_000_000, -18_000_000, 3_782_822, -12_226_348, 12_345, 100_001, -99_999}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		values = append(values, rng.IntN(36_000_001)-18_000_000)
	}
	for _, v := range values {
		got := string(appendDegrees(nil, v))
		want := strconv.FormatFloat(float64(v)/1e5, 'f', -1, 64)
		if got != want {
			t.Fatalf("appendDegrees(%d) = %s; want %s", v, got, want)
		}
	}
}
