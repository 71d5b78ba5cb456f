package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/browsertest"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
	"github.com/stravahook/stravahook/lib/readapi/readapitest"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
)

// mapPage serves kept activities with `serve` (embedded Redis unless the
// tests have a real one) and opens /map.html in headless Chromium. Tiles
// cannot load (no internet in tests), as when a user is offline.
func mapPage(t testing.TB, activities int) (*browsertest.Page, string) {
	t.Helper()
	newest := time.Date(2026, 3, 1, 18, 0, 0, 0, time.UTC)
	return mapPageOf(t, readapitest.Activities(activities, 200, 134815, newest, 1))
}

// mapPageOf is mapPage with the given activities kept.
func mapPageOf(t testing.TB, acts []strava.DetailedActivity) (*browsertest.Page, string) {
	t.Helper()
	page := browsertest.Open(t, 1280, 800) // skips without chromium
	r := rdbtest.New(t)
	keepForTest(t, store.New(r.Client, r.Prefix), acts...)
	base := startServe(t, map[string]string{
		"REDIS_URL":               r.URL,
		"STRAVAHOOK_REDIS_PREFIX": r.Prefix,
		"STRAVA_VERIFY_TOKEN":     "verify-abc",
		"READ_TOKEN":              readToken,
	})
	page.Navigate(base + "/map.html")
	return page, base
}

// The map page, in a real browser, asks for the token, and once it is
// typed in draws every kept activity: a track on the map and a row in the
// list for each, without a script error, and without the tiles.
func TestMapPageDrawsTheKeptActivities(t *testing.T) {
	page, base := mapPage(t, 3)

	var asked struct {
		Visible bool
		Focused string
	}
	page.Eval(`({visible: !document.getElementById("login").hidden, focused: document.activeElement.id})`, &asked)
	if !asked.Visible || asked.Focused != "token" {
		t.Fatalf("the page does not ask for the token: %+v", asked)
	}
	page.Type(readToken)
	page.PressEnter()
	page.WaitFor(`document.body.dataset.drawn === "true"`, 30*time.Second)

	var got struct {
		Paths, Drawn, Rows int
		Names              []string
		Stored, URL        string
		Status             string
	}
	page.Eval(`({
		paths: document.querySelectorAll("#map svg path.track").length,
		drawn: [...document.querySelectorAll("#map svg path.track")].filter(p => (p.getAttribute("d") || "").length > 20).length,
		rows: document.querySelectorAll("#list li.activity").length,
		names: [...document.querySelectorAll("#list li.activity .name")].map(n => n.textContent),
		stored: sessionStorage.getItem("stravahook.readToken"),
		url: location.href,
		status: document.getElementById("status").textContent,
	})`, &got)
	png := page.Screenshot()
	shot := filepath.Join(os.TempDir(), "stravahook-map.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the map page: %s", shot)
	fmt.Fprintf(os.Stderr, "map page screenshot: %s (%d bytes)\n", shot, len(png))

	if got.Paths != 3 || got.Drawn != 3 {
		t.Errorf("%d track paths on the map (%d drawn); want 3", got.Paths, got.Drawn)
	}
	if got.Rows != 3 || strings.Join(got.Names, "|") != "Morning Run #3|Lunch Ride #2|Afternoon Hike #1" {
		t.Errorf("list rows %d: %q; want the 3 activities, newest first", got.Rows, got.Names)
	}
	if got.Stored != readToken || strings.Contains(got.URL, readToken) || got.URL != base+"/map.html" {
		t.Errorf("token kept in session storage: %v; page URL %q; want the token there and never in the URL", got.Stored == readToken, got.URL)
	}
	if !strings.Contains(got.Status, "3 activities, 3 with a track") {
		t.Errorf("status line %q", got.Status)
	}

	// A row of the list shows its activity on the map, with its popup.
	page.Click(`#list li.activity:nth-child(2)`)
	page.WaitFor(`document.querySelector(".leaflet-popup-content .popup")`, 10*time.Second)
	var popup string
	page.Eval(`document.querySelector(".leaflet-popup-content").innerText`, &popup)
	for _, want := range []string{"Lunch Ride #2", "Ride · ", "2026", "16.7 km", "moving 1:32:36"} {
		if !strings.Contains(popup, want) {
			t.Errorf("the popup says %q; want it to say %q", popup, want)
		}
	}
	if errs := page.ScriptErrors(); len(errs) > 0 {
		t.Errorf("script errors: %q", errs)
	}

	// A reload in the same tab uses the kept token: no second prompt.
	page.Reload()
	page.WaitFor(`document.body.dataset.drawn === "true"`, 30*time.Second)
	var again struct {
		Asked bool
		Paths int
	}
	page.Eval(`({asked: !document.getElementById("login").hidden, paths: document.querySelectorAll("#map svg path.track").length})`, &again)
	if again.Asked || again.Paths != 3 {
		t.Errorf("after a reload: asked again %v, %d paths; want no prompt and 3 paths", again.Asked, again.Paths)
	}
}

// Activity names are the athletes' own text: one written as HTML shows as
// that text in the list and the popup, and never becomes markup.
func TestMapPageShowsAnHTMLNameAsText(t *testing.T) {
	const name = `<img src=x onerror="window.pwned=1"><b>bold</b>`
	acts := readapitest.Activities(1, 50, 134815, time.Date(2026, 3, 1, 18, 0, 0, 0, time.UTC), 1)
	acts[0].Name = name
	page, _ := mapPageOf(t, acts)
	page.Type(readToken)
	page.PressEnter()
	page.WaitFor(`document.body.dataset.drawn === "true"`, 30*time.Second)
	page.Click(`#list li.activity`)
	page.WaitFor(`document.querySelector(".leaflet-popup-content .popup")`, 10*time.Second)
	var got struct {
		Row, Popup string
		Markup     int
		Pwned      bool
	}
	page.Eval(`({
		row: document.querySelector("#list li.activity .name").textContent,
		popup: document.querySelector(".leaflet-popup-content .popup .name").textContent,
		markup: document.querySelectorAll("#list img, #list b, .leaflet-popup-content img, .leaflet-popup-content b").length,
		pwned: window.pwned === 1,
	})`, &got)
	if got.Row != name || got.Popup != name || got.Markup != 0 || got.Pwned {
		t.Errorf("an HTML activity name: %+v; want it shown as text in the row and the popup, no markup made of it", got)
	}
	if errs := page.ScriptErrors(); len(errs) > 0 {
		t.Errorf("script errors: %q", errs)
	}
}

// A wrong token is refused and asked for again, and not kept.
func TestMapPageAsksAgainForAWrongToken(t *testing.T) {
	page, _ := mapPage(t, 1)
	page.Type("not-the-read-token-at-all")
	page.PressEnter()
	page.WaitFor(`!document.getElementById("login-error").hidden`, 30*time.Second)
	var got struct {
		Error  string
		Stored *string
		Paths  int
	}
	page.Eval(`({error: document.getElementById("login-error").textContent, stored: sessionStorage.getItem("stravahook.readToken"),
		paths: document.querySelectorAll("#map svg path.track").length})`, &got)
	if !strings.Contains(got.Error, "refused") || got.Stored != nil || got.Paths != 0 {
		t.Errorf("after a wrong token: %+v; want it refused, forgotten, nothing drawn", got)
	}
}

// BenchmarkMapPageDraw1000 measures, in Chromium, how long the map page
// takes to fetch 1,000 kept activities (200-point tracks) as GeoJSON and to
// draw them, with the page's own performance.now(): around the fetch, and
// from the parsed answer to the first frame after the tracks and the list
// are in the page. One op is one page load.
func BenchmarkMapPageDraw1000(b *testing.B) {
	page, _ := mapPage(b, 1000)
	page.Type(readToken)
	page.PressEnter()
	page.WaitFor(`document.body.dataset.drawn === "true"`, 60*time.Second)
	var fetchMs, drawMs int
	b.ResetTimer()
	for range b.N {
		page.Reload()
		page.WaitFor(`document.body.dataset.drawn === "true"`, 60*time.Second)
		var stats struct{ Tracks, FetchMs, DrawMs int }
		page.Eval(`window.mapStats`, &stats)
		if stats.Tracks != 1000 {
			b.Fatalf("drew %d tracks; want 1000", stats.Tracks)
		}
		fetchMs += stats.FetchMs
		drawMs += stats.DrawMs
	}
	b.ReportMetric(float64(fetchMs)/float64(b.N), "fetch-ms/op")
	b.ReportMetric(float64(drawMs)/float64(b.N), "draw-ms/op")
	if errs := page.ScriptErrors(); len(errs) > 0 {
		b.Errorf("script errors: %q", errs)
	}
}
