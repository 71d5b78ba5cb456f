// Package respond owns how every stravahook route answers in JSON: one
// encoding (a Content-Length, no HTML escaping) and one error shape,
// {"error": "..."}.
package respond

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
)

// JSON writes v with a Content-Length, and without HTML escaping, so that
// a challenge comes back byte for byte as Strava sent it.
func JSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"could not encode the answer"}` + "\n")
	}
	Encoded(w, status, buf.Bytes())
}

// Encoded writes body, JSON already encoded (the intake encodes its few
// answers once), and flushes it: the caller may still have work to do
// (a log line) that the client need not wait for.
func Encoded(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Content-Type-Options"] = noSniff
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write(body)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

var jsonContentType = []string{"application/json"}

// noSniff keeps a browser from reading a JSON answer (which may echo what
// a client sent) as anything but JSON.
var noSniff = []string{"nosniff"}

// Error answers {"error": msg}.
func Error(w http.ResponseWriter, status int, msg string) {
	JSON(w, status, map[string]string{"error": msg})
}
