package handler

import (
	"net/http"

	"github.com/stravahook/stravahook/lib/app"
)

// Connect sends an athlete's browser to Strava's authorize page.
func Connect(w http.ResponseWriter, r *http.Request) {
	app.Vercel().Serve(w, r, "/api/connect")
}
