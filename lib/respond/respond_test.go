package respond_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stravahook/stravahook/lib/respond"
)

func TestJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	respond.JSON(rec, http.StatusTeapot, map[string]string{"a": "<b>"})
	if rec.Code != http.StatusTeapot || rec.Body.String() != `{"a":"<b>"}`+"\n" ||
		rec.Header().Get("Content-Length") != "12" || rec.Header().Get("Content-Type") != "application/json" ||
		rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("JSON = %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
	rec = httptest.NewRecorder()
	respond.JSON(rec, http.StatusOK, map[string]any{"bad": make(chan int)})
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "could not encode") {
		t.Errorf("unencodable value: %d %q, want 500", rec.Code, rec.Body.String())
	}
}

func TestError(t *testing.T) {
	rec := httptest.NewRecorder()
	respond.Error(rec, http.StatusForbidden, `no "entry"`)
	if rec.Code != http.StatusForbidden || rec.Body.String() != `{"error":"no \"entry\""}`+"\n" {
		t.Errorf("Error = %d %q", rec.Code, rec.Body.String())
	}
}
