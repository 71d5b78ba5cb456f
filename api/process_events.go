package handler

import (
	"net/http"

	"github.com/stravahook/stravahook/lib/app"
)

// ProcessEvents drains the queue: Vercel Cron calls it with
// Authorization: Bearer $CRON_SECRET.
func ProcessEvents(w http.ResponseWriter, r *http.Request) {
	app.Vercel().Serve(w, r, "/api/process_events")
}
