package app

import (
	"fmt"
	"io"
	"net/http"
)

// Route is one HTTP route of stravahook. The routes table is the only list
// of them: App.Routes mounts it for serve and tests, each Vercel function
// serves from it (Instance.Serve), and serve's route list is printed from
// it. Adding a route is one line there (plus its api/ file for Vercel).
type Route struct {
	Pattern string // http.ServeMux pattern, the same path on Vercel and serve
	Methods string // for the route list, e.g. "GET|POST"
	Summary string // for the route list
	handler func(*App) http.Handler
}

// intakePattern is Strava's callback, whose answers have a deadline.
const intakePattern = "/api/activity_update"

var routes = []Route{
	{intakePattern, "GET|POST", "Strava webhook (validation, events); 404 when STRAVA_CALLBACK_SECRET is set", (*App).ActivityUpdate},
	// On Vercel, vercel.json rewrites this path to the activity_update
	// function; the function still sees it (and the rewrite also passes the
	// secret as webhook.CallbackSecretParam).
	{"/api/activity_update/{secret}", "GET|POST", "Strava webhook at the secret path (STRAVA_CALLBACK_SECRET)", (*App).ActivityUpdate},
	{"/api/process_events", "GET|POST", "drain the queue (Authorization: Bearer $CRON_SECRET)", (*App).ProcessEvents},
	{"/api/connect", "GET", "connect an athlete with Strava", func(a *App) http.Handler { return a.ConnectPages().Start() }},
	{"/api/connect_callback", "GET", "Strava's OAuth redirect", func(a *App) http.Handler { return a.ConnectPages().Callback() }},
	{"/api/activities", "GET", "kept activities as JSON or GeoJSON (Authorization: Bearer $READ_TOKEN)", (*App).Activities},
}

// WriteRouteList writes the routes as serve lists them, one per line.
func WriteRouteList(w io.Writer) {
	for _, r := range routes {
		fmt.Fprintf(w, "  %-8s %-28s %s\n", r.Methods, r.Pattern, r.Summary)
	}
}

// Routes serves every route at the path Vercel gives it. The handlers are
// built once per App.
func (a *App) Routes() http.Handler { return a.serveMux() }

func (a *App) serveMux() *http.ServeMux {
	a.once.Do(func() {
		a.mux = http.NewServeMux()
		for _, r := range routes {
			a.mux.Handle(r.Pattern, r.handler(a))
		}
	})
	return a.mux
}
