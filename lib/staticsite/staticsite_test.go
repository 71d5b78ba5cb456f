package staticsite

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServesLikeVercel(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	for name, body := range map[string]string{
		"site/index.html":                            "<h1>landing</h1>",
		"site/map.html":                              "<h1>map</h1>",
		"site/vendor/leaflet/leaflet.js":             "L={}",
		"site/vendor/leaflet/images/marker-icon.png": "\x89PNG\r\n\x1a\n",
		"secret.txt":                                 "outside",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "secret.txt"), filepath.Join(site, "link.txt")); err != nil {
		t.Fatal(err)
	}
	h, err := Handler(site)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		status       int
		body, ctype  string
	}{
		{"GET", "/", 200, "<h1>landing</h1>", "text/html; charset=utf-8"},
		{"GET", "/index.html", 200, "<h1>landing</h1>", "text/html; charset=utf-8"},
		{"GET", "/map.html", 200, "<h1>map</h1>", "text/html; charset=utf-8"},
		{"HEAD", "/map.html", 200, "", "text/html; charset=utf-8"},
		{"GET", "/vendor/leaflet/leaflet.js", 200, "L={}", "text/javascript; charset=utf-8"},
		{"GET", "/vendor/leaflet/images/marker-icon.png", 200, "\x89PNG\r\n\x1a\n", "image/png"},
		{"GET", "/vendor/leaflet/", 404, "", ""},
		{"GET", "/vendor", 404, "", ""},
		{"GET", "/map", 404, "", ""},
		{"GET", "/../secret.txt", 404, "", ""},
		{"GET", "/%2e%2e/secret.txt", 404, "", ""},
		{"GET", "/link.txt", 404, "", ""},
		{"POST", "/map.html", 405, "", ""},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.status {
			t.Errorf("%s %s: %d; want %d", tc.method, tc.path, res.StatusCode, tc.status)
			continue
		}
		if strings.Contains(string(body), "outside") {
			t.Errorf("%s %s shows a file outside the folder", tc.method, tc.path)
		}
		if tc.status == 200 && (string(body) != tc.body || res.Header.Get("Content-Type") != tc.ctype) {
			t.Errorf("%s %s: %q (%s); want %q (%s)", tc.method, tc.path, body, res.Header.Get("Content-Type"), tc.body, tc.ctype)
		}
	}
}

// Tests run in the package's folder, inside the checkout: Find walks up to
// the repository's .static, which holds the landing and map pages.
func TestFindsTheRepositorysFolder(t *testing.T) {
	dir, err := Find()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Abs(filepath.Join("..", "..", DirName))
	if dir != want {
		t.Errorf("Find() = %s; want %s", dir, want)
	}
	for _, page := range []string{"index.html", "map.html"} {
		if _, err := os.Stat(filepath.Join(dir, page)); err != nil {
			t.Errorf("%s: %v", page, err)
		}
	}
}
