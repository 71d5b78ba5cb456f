// Package staticsite serves the project's static pages (the .static
// folder, vercel.json's outputDirectory) the way Vercel serves them, for
// `stravahook serve`: / is index.html, every other file at its own path,
// no directory listings, 404 for anything else. It also finds that folder
// from the working directory, so serve works from anywhere in a checkout.
package staticsite

import (
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
)

// DirName is the static folder's name at the repository's root.
const DirName = ".static"

// Find returns the static folder of the stravahook checkout holding the
// working directory (found by walking up to the go.mod beside it), else
// the one this binary was built from, when it is still there.
func Find() (string, error) {
	var tried []string
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if isRepoRoot(dir) {
				return filepath.Join(dir, DirName), nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
		tried = append(tried, wd+" and its parents")
	}
	// A binary built in a checkout (go run, go build) remembers this
	// file's path there; -trimpath or a moved checkout loses it.
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if isRepoRoot(root) {
			return filepath.Join(filepath.Clean(root), DirName), nil
		}
		tried = append(tried, filepath.Clean(root))
	}
	return "", fmt.Errorf("no %s folder found (looked in %s): run serve inside the stravahook repository, or give -static DIR", DirName, strings.Join(tried, "; "))
}

func isRepoRoot(dir string) bool {
	if info, err := os.Stat(filepath.Join(dir, DirName)); err != nil || !info.IsDir() {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, "go.mod"))
	return err == nil
}

// Handler serves the files under dir. Only GET and HEAD are served.
func Handler(dir string) (http.Handler, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("static pages: %w", err)
	}
	return &site{root: root}, nil
}

type site struct{ root *os.Root }

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" || strings.HasSuffix(r.URL.Path, "/") {
		name = path.Join(name, "index.html")
	}
	// os.Root refuses names leaving the folder (.., symlinks out of it).
	f, err := s.root.Open(filepath.FromSlash(name))
	if err != nil {
		http.Error(w, "404 not found", http.StatusNotFound)
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || info.IsDir() {
		http.Error(w, "404 not found", http.StatusNotFound)
		return
	}
	// Vercel's caching of static files: always revalidated.
	w.Header().Set("Cache-Control", "public, max-age=0, must-revalidate")
	http.ServeContent(w, r, info.Name(), info.ModTime(), f)
}
