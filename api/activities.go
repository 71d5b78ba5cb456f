package handler

import (
	"net/http"

	"github.com/stravahook/stravahook/lib/app"
)

// Activities lists the kept activities as JSON or GeoJSON to holders of
// READ_TOKEN (Authorization: Bearer).
func Activities(w http.ResponseWriter, r *http.Request) {
	app.Vercel().Serve(w, r, "/api/activities")
}
