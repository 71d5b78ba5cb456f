package handler

import (
	"net/http"

	"github.com/stravahook/stravahook/lib/app"
)

// ConnectCallback is Strava's OAuth redirect: it stores the athlete's tokens.
func ConnectCallback(w http.ResponseWriter, r *http.Request) {
	app.Vercel().Serve(w, r, "/api/connect_callback")
}
