package strava

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// fastCreate is testdata/events/create.json; the variants below edit it.
const fastCreate = `{"aspect_type":"create","event_time":1522986611,"object_id":1491968222,"object_type":"activity","owner_id":28004310,"subscription_id":122449,"updates":{}}`

// fastAccepted are bodies the fast path must decode itself: the common
// shapes, so that the speedup is real for Strava's traffic.
var fastAccepted = []struct {
	name string
	body string
	want Event
}{
	{
		name: "create with spaces and newlines",
		body: "\n { \"aspect_type\" : \"create\" ,\r\n\t\"event_time\":1522986611, \"object_id\": 1491968222,\"object_type\":\"activity\",\"owner_id\":28004310,\"subscription_id\":122449,\"updates\": { } } \n",
		want: Event{ObjectType: "activity", ObjectID: 1491968222, AspectType: "create", OwnerID: 28004310, SubscriptionID: 122449, EventTime: 1522986611},
	},
	{
		name: "reordered keys, no updates",
		body: `{"owner_id":28004310,"updates":{},"subscription_id":122449,"object_type":"activity","object_id":1491968222,"event_time":1522986611,"aspect_type":"delete"}`,
		want: Event{ObjectType: "activity", ObjectID: 1491968222, AspectType: "delete", OwnerID: 28004310, SubscriptionID: 122449, EventTime: 1522986611},
	},
	{
		name: "string subscription_id with leading zeros",
		body: `{"subscription_id":"007","owner_id":13408,"object_id":12312312312,"object_type":"activity","aspect_type":"create","event_time":1297286541}`,
		want: Event{ObjectType: "activity", ObjectID: 12312312312, AspectType: "create", OwnerID: 13408, SubscriptionID: 7, EventTime: 1297286541},
	},
	{
		name: "authorized as a boolean",
		body: `{"owner_id":1,"object_type":"athlete","aspect_type":"update","subscription_id":2,"object_id":1,"updates":{"authorized":false},"event_time":3}`,
		want: Event{ObjectType: "athlete", ObjectID: 1, AspectType: "update", Updates: map[string]string{"authorized": "false"}, OwnerID: 1, SubscriptionID: 2, EventTime: 3},
	},
	{
		name: "several updates, true boolean",
		body: `{"aspect_type":"update","event_time":1,"object_id":1,"object_type":"activity","owner_id":1,"subscription_id":1,"updates":{"title":"Morning Ride","type":"Ride", "private" : true}}`,
		want: Event{ObjectType: "activity", ObjectID: 1, AspectType: "update", Updates: map[string]string{"title": "Morning Ride", "type": "Ride", "private": "true"}, OwnerID: 1, SubscriptionID: 1, EventTime: 1},
	},
	{
		name: "max int64 ids",
		body: `{"aspect_type":"create","event_time":9223372036854775807,"object_id":9223372036854775807,"object_type":"activity","owner_id":9223372036854775807,"subscription_id":"9223372036854775807"}`,
		want: Event{ObjectType: "activity", ObjectID: math.MaxInt64, AspectType: "create", OwnerID: math.MaxInt64, SubscriptionID: math.MaxInt64, EventTime: math.MaxInt64},
	},
}

func TestDecodeEventFastTakesStravaPayloads(t *testing.T) {
	files, err := filepath.Glob("testdata/events/*.json")
	if err != nil || len(files) != 5 {
		t.Fatalf("want the 5 Strava payloads in testdata/events, got %v (%v)", files, err)
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			body, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			assertFastAgrees(t, body, true)
		})
	}
}

func TestDecodeEventFastTakesCommonVariants(t *testing.T) {
	for _, tt := range fastAccepted {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := decodeEventFast([]byte(tt.body))
			if !ok {
				t.Fatalf("fast path declined %s", tt.body)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decodeEventFast = %+v, want %+v", got, tt.want)
			}
			assertFastAgrees(t, []byte(tt.body), true)
		})
	}
}

// TestDecodeEventFastDeclines lists bodies the fast path must leave to the
// slow path: some are valid events (the slow path decodes them), some are
// errors (whose messages only the slow path produces).
func TestDecodeEventFastDeclines(t *testing.T) {
	for name, body := range fastDeclined() {
		t.Run(name, func(t *testing.T) {
			if ev, ok := decodeEventFast([]byte(body)); ok {
				t.Fatalf("fast path took %s and gave %+v", body, ev)
			}
		})
	}
}

// fastDeclined returns variants of create.json the fast path declines.
func fastDeclined() map[string]string {
	sub := func(old, new string) string {
		if !strings.Contains(fastCreate, old) {
			panic("fastCreate lacks " + old)
		}
		return strings.Replace(fastCreate, old, new, 1)
	}
	return map[string]string{
		"empty":                     ``,
		"empty object":              `{}`,
		"array":                     `[]`,
		"null body":                 `null`,
		"trailing brace":            fastCreate + `}`,
		"trailing object":           fastCreate + `{}`,
		"trailing comma":            sub(`"updates":{}`, `"updates":{},`),
		"truncated":                 fastCreate[:len(fastCreate)-1],
		"int64 overflow":            sub(`1491968222`, `9223372036854775808`),
		"huge id":                   sub(`1491968222`, `99999999999999999999999`),
		"string overflow":           sub(`122449`, `"9223372036854775808"`),
		"leading zero":              sub(`1491968222`, `01`),
		"zero":                      sub(`1491968222`, `0`),
		"string zero":               sub(`122449`, `"0"`),
		"empty string id":           sub(`122449`, `""`),
		"signed string id":          sub(`122449`, `"+1"`),
		"negative":                  sub(`1491968222`, `-1`),
		"fraction":                  sub(`1491968222`, `1.0`),
		"exponent":                  sub(`1491968222`, `1e3`),
		"string object_id":          sub(`1491968222`, `"1491968222"`),
		"null id":                   sub(`1491968222`, `null`),
		"null enum":                 sub(`"activity"`, `null`),
		"null updates":              sub(`"updates":{}`, `"updates":null`),
		"escape in value":           sub(`"activity"`, `"\u0061ctivity"`),
		"escape in key":             sub(`"object_type"`, `"object\u005ftype"`),
		"escaped slash":             sub(`"updates":{}`, `"updates":{"title":"a\/b"}`),
		"non-ASCII value":           sub(`"updates":{}`, `"updates":{"title":"Café"}`),
		"invalid UTF-8":             sub(`"updates":{}`, "\"updates\":{\"title\":\"\xff\"}"),
		"lone continuation byte":    sub(`"updates":{}`, "\"updates\":{\"title\":\"\x80\"}"),
		"control byte":              sub(`"updates":{}`, "\"updates\":{\"title\":\"a\tb\"}"),
		"other case key":            sub(`"object_type"`, `"Object_Type"`),
		"unknown key":               sub(`"updates":{}`, `"updates":{},"extra":1`),
		"duplicate key":             sub(`"updates":{}`, `"updates":{},"object_id":2`),
		"duplicate updates":         sub(`"updates":{}`, `"updates":{"a":"1"},"updates":{"b":"2"}`),
		"duplicate update key":      sub(`"updates":{}`, `"updates":{"a":"1","a":"2"}`),
		"nested updates":            sub(`"updates":{}`, `"updates":{"o":{"a":"b"}}`),
		"array in updates":          sub(`"updates":{}`, `"updates":{"o":[]}`),
		"number in updates":         sub(`"updates":{}`, `"updates":{"n":1}`),
		"null in updates":           sub(`"updates":{}`, `"updates":{"n":null}`),
		"truex in updates":          sub(`"updates":{}`, `"updates":{"n":truex}`),
		"updates not an object":     sub(`"updates":{}`, `"updates":"x"`),
		"missing field":             sub(`"owner_id":28004310,`, ``),
		"invalid object_type":       sub(`"activity"`, `"route"`),
		"invalid aspect_type":       sub(`"create"`, `"Create"`),
		"byte order mark":           "\uFEFF" + fastCreate,
		"missing colon":             sub(`"owner_id":`, `"owner_id"`),
		"missing comma":             sub(`,"owner_id"`, `"owner_id"`),
		"vertical tab whitespace":   sub(`,"owner_id"`, "\v,\"owner_id\""),
		"non-breaking space":        sub(`,"owner_id"`, "\u00a0,\"owner_id\""),
		"unterminated update key":   sub(`"updates":{}`, `"updates":{"a`),
		"unterminated update text":  sub(`"updates":{}`, `"updates":{"a":"b`),
		"cut after a colon":         `{"object_id":`,
		"cut after a colon, spaced": `{"subscription_id": `,
		"cut in a number":           `{"object_id":12`,
		"cut in a boolean":          `{"updates":{"private":tru`,
		"boolean at the end":        `{"updates":{"private":true`,
	}
}

// assertFastAgrees fails if the fast path accepts body while the slow path
// rejects it or decodes it differently. With mustTake, the fast path must
// also accept it.
func assertFastAgrees(t testing.TB, body []byte, mustTake bool) {
	t.Helper()
	fast, ok := decodeEventFast(body)
	if !ok {
		if mustTake {
			t.Fatalf("fast path declined %q", body)
		}
		return
	}
	slow, err := decodeEventSlow(body)
	if err != nil {
		t.Fatalf("fast path accepted %q as %+v; slow path rejects it: %v", body, fast, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("paths disagree on %q:\nfast %#v\nslow %#v", body, fast, slow)
	}
	if full, err := DecodeEvent(body); err != nil || !reflect.DeepEqual(full, slow) {
		t.Fatalf("DecodeEvent(%q) = %+v, %v; want %+v", body, full, err, slow)
	}
}

// FuzzDecodeEventFastAgrees checks that whatever the fast path accepts, the
// reflective path accepts too and decodes to the same event.
func FuzzDecodeEventFastAgrees(f *testing.F) {
	for _, body := range stravaPayloads(f) {
		f.Add(body)
	}
	for _, tt := range fastAccepted {
		f.Add([]byte(tt.body))
	}
	for _, body := range fastDeclined() {
		f.Add([]byte(body))
	}
	// Near misses the fuzzer may turn into accepted bodies.
	for _, id := range []string{"12312312312", strconv.FormatInt(math.MaxInt64, 10), "9223372036854775808", "1", "10"} {
		f.Add([]byte(strings.Replace(fastCreate, "1491968222", id, 1)))
		f.Add([]byte(strings.Replace(fastCreate, "122449", `"`+id+`"`, 1)))
	}
	f.Add([]byte(strings.Replace(fastCreate, `"updates":{}`, `"updates":{"authorized":"false"}`, 1)))
	f.Add([]byte(strings.Replace(fastCreate, `"updates":{}`, `"updates":{"authorized":false,"title":"x"}`, 1)))

	f.Fuzz(func(t *testing.T, body []byte) {
		assertFastAgrees(t, body, false)
	})
}

func BenchmarkDecodeEvent(b *testing.B) {
	body, err := os.ReadFile("testdata/events/create.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEvent(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEventSlow is the reflective path alone, for comparison.
func BenchmarkDecodeEventSlow(b *testing.B) {
	body, err := os.ReadFile("testdata/events/create.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeEventSlow(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEventUpdates covers the fast path with a non-empty updates
// map and a title that must be copied.
func BenchmarkDecodeEventUpdates(b *testing.B) {
	for _, name := range []string{"update-title.json", "deauthorize.json"} {
		body, err := os.ReadFile("testdata/events/" + name)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeEvent(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
