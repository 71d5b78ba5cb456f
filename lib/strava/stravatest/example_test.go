package stravatest_test

import (
	"context"
	"fmt"

	"github.com/stravahook/stravahook/lib/strava"
	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

// A test points the code under test at the double's URL, connects an
// athlete, and checks what Strava saw.
func Example() {
	s := stravatest.NewServer()
	defer s.Close()
	tok := s.IssueToken(134815, "")              // an athlete who approved the application
	act := s.NewActivity(134815, "Run")          // who then uploaded a run
	s.FailNext(stravatest.RouteActivity, 1, 503) // Strava has a hiccup first
	client := s.Client()                         // or strava.NewClient with BaseURL: s.URL

	ctx := context.Background()
	_, _, err := client.GetActivity(ctx, tok.AccessToken, act.ID)
	fmt.Println("first try, transient:", strava.IsTransient(err))
	got, _, err := client.GetActivity(ctx, tok.AccessToken, act.ID)
	fmt.Println(got.SportType, got.Distance > 0, got.Map.SummaryPolyline != "", err)
	fmt.Println("calls:", s.Calls(stravatest.RouteActivity))
	// Output:
	// first try, transient: true
	// Run true true <nil>
	// calls: 2
}
