package app

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every Vercel function serves a route of the table, and every route
// without a wildcard has its function: a route added to one and not the
// other would answer 404 on Vercel or never be deployed.
func TestEveryRouteHasItsVercelFunction(t *testing.T) {
	files, err := filepath.Glob("../../api/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no api files found: %v", err)
	}
	served := map[string]string{}
	call := regexp.MustCompile(`app\.Vercel\(\)\.Serve\(w, r, "([^"]+)"\)`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := call.FindSubmatch(src)
		if m == nil {
			t.Errorf("%s does not call app.Vercel().Serve(w, r, \"<route>\")", f)
			continue
		}
		want := "/api/" + strings.TrimSuffix(filepath.Base(f), ".go")
		if string(m[1]) != want {
			t.Errorf("%s serves %q, want %q (Vercel routes a function by its file name)", f, m[1], want)
		}
		served[string(m[1])] = f
	}
	known := map[string]bool{}
	for _, r := range routes {
		known[r.Pattern] = true
		if !strings.Contains(r.Pattern, "{") && served[r.Pattern] == "" {
			t.Errorf("route %s has no api/ file serving it", r.Pattern)
		}
	}
	for pattern, f := range served {
		if !known[pattern] {
			t.Errorf("%s serves %s, which is not in the route table", f, pattern)
		}
	}
}
