// Package handler holds stravahook's Vercel functions, one per file. Each
// is a thin entry point: the logic lives in lib/.
package handler

import (
	"net/http"

	"github.com/stravahook/stravahook/lib/app"
)

// ActivityUpdate is Strava's webhook callback: the subscription
// validation GET and the event POST.
func ActivityUpdate(w http.ResponseWriter, r *http.Request) {
	app.Vercel().Serve(w, r, "/api/activity_update")
}
