package readapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
)

type feature struct {
	ID         int64
	Geometry   json.RawMessage
	Properties map[string]any
}

type featureCollection struct{ Features []feature }

// validateFeatureCollection checks body against RFC 7946's rules for what
// the read API answers: one complete JSON text holding a FeatureCollection
// (3.3) of Features (3.2), each with a geometry member (null or a Point or
// LineString, 3.1) and a properties member; positions are [longitude,
// latitude] within range (3.1.1, 4), a LineString has two or more
// positions (3.1.4); no member changes meaning across object types (7.1)
// and there is no "crs" (4).
func validateFeatureCollection(t *testing.T, body []byte) featureCollection {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	var top map[string]json.RawMessage
	if err := dec.Decode(&top); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, body)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("data after the FeatureCollection (%v)", err)
	}
	expectType(t, "the top object", top, "FeatureCollection")
	forbid(t, "the FeatureCollection", top, "coordinates", "geometries", "geometry", "properties", "crs")
	var features []map[string]json.RawMessage
	if err := json.Unmarshal(top["features"], &features); err != nil || features == nil {
		t.Fatalf("features is not an array of objects: %s (%v)", top["features"], err)
	}
	for i, f := range features {
		expectType(t, "a feature", f, "Feature")
		forbid(t, "a Feature", f, "coordinates", "geometries", "features", "crs")
		if id, ok := f["id"]; ok && !(isNumber(id) || id[0] == '"') {
			t.Errorf("feature %d: id %s is neither a number nor a string", i, id)
		}
		props, ok := f["properties"]
		if !ok || !(string(props) == "null" || props[0] == '{') {
			t.Errorf("feature %d: properties %s; want an object or null", i, props)
		}
		g, ok := f["geometry"]
		if !ok {
			t.Errorf("feature %d has no geometry member", i)
			continue
		}
		if string(g) != "null" {
			validateGeometry(t, i, g)
		}
	}
	var fc featureCollection
	if err := json.Unmarshal(body, &fc); err != nil {
		t.Fatal(err)
	}
	return fc
}

func validateGeometry(t *testing.T, i int, raw json.RawMessage) {
	t.Helper()
	var g map[string]json.RawMessage
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Errorf("feature %d: geometry %s is not an object", i, raw)
		return
	}
	forbid(t, "a geometry", g, "geometry", "properties", "features", "crs")
	var kind string
	_ = json.Unmarshal(g["type"], &kind)
	switch kind {
	case "Point":
		var p []float64
		if err := json.Unmarshal(g["coordinates"], &p); err != nil {
			t.Errorf("feature %d: Point coordinates %s: %v", i, g["coordinates"], err)
			return
		}
		validatePosition(t, i, p)
	case "LineString":
		var line [][]float64
		if err := json.Unmarshal(g["coordinates"], &line); err != nil || len(line) < 2 {
			t.Errorf("feature %d: LineString coordinates %.80s: %v; want two or more positions", i, g["coordinates"], err)
			return
		}
		for _, p := range line {
			validatePosition(t, i, p)
		}
	default:
		t.Errorf("feature %d: geometry type %q; want Point or LineString", i, kind)
	}
}

func validatePosition(t *testing.T, i int, p []float64) {
	t.Helper()
	if len(p) < 2 || len(p) > 3 || p[0] < -180 || p[0] > 180 || p[1] < -90 || p[1] > 90 {
		t.Errorf("feature %d: position %v; want [longitude, latitude] in range", i, p)
	}
}

func expectType(t *testing.T, what string, obj map[string]json.RawMessage, want string) {
	t.Helper()
	if got := string(obj["type"]); got != `"`+want+`"` {
		t.Fatalf("%s has type %s; want %q", what, got, want)
	}
}

func forbid(t *testing.T, what string, obj map[string]json.RawMessage, members ...string) {
	t.Helper()
	for _, m := range members {
		if _, ok := obj[m]; ok {
			t.Errorf("%s has a %q member (RFC 7946 7.1)", what, m)
		}
	}
}

func isNumber(raw json.RawMessage) bool {
	var n json.Number
	return json.Unmarshal(raw, &n) == nil
}
