package app

import (
	"net/http"

	"github.com/stravahook/stravahook/lib/webhook"
)

func writeError(w http.ResponseWriter, status int, msg string) {
	webhook.WriteJSON(w, status, map[string]string{"error": msg})
}
