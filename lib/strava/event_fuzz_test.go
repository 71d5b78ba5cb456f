package strava

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzDecodeEvent checks that DecodeEvent never panics, accepts only valid
// events, and that an accepted event survives encoding and decoding again
// unchanged (the queue stores events as JSON).
func FuzzDecodeEvent(f *testing.F) {
	for _, body := range stravaPayloads(f) {
		f.Add(body)
	}
	f.Add([]byte(`{"object_type":"athlete","object_id":1,"aspect_type":"update","owner_id":1,"subscription_id":"7","event_time":1,"updates":{"authorized":false,"n":[1,{"a":null}]}}`))
	f.Add([]byte(`{"object_type":"activity","object_id":1,"aspect_type":"create","owner_id":1,"subscription_id":1,"event_time":1}}`))

	// Invalid UTF-8 inside a non-string updates value once broke the round trip.
	f.Add([]byte("{\"object_type\":\"activity\",\"object_id\":1,\"aspect_type\":\"update\",\"owner_id\":1,\"subscription_id\":1,\"event_time\":1,\"updates\":{\"o\":{\"a\":\"\xff\"}}}"))

	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := DecodeEvent(body)
		if err != nil {
			var ee *EventError
			if !errors.As(err, &ee) {
				t.Fatalf("error %v is not an *EventError", err)
			}
			if !reflect.DeepEqual(ev, Event{}) {
				t.Fatalf("error %v came with a non-zero event %+v", err, ev)
			}
			return
		}
		if ev.ObjectID <= 0 || ev.OwnerID <= 0 || ev.SubscriptionID <= 0 || ev.EventTime <= 0 {
			t.Fatalf("accepted non-positive ids: %+v", ev)
		}
		if ev.ObjectType != ObjectActivity && ev.ObjectType != ObjectAthlete {
			t.Fatalf("accepted object_type %q", ev.ObjectType)
		}
		if ev.AspectType != AspectCreate && ev.AspectType != AspectUpdate && ev.AspectType != AspectDelete {
			t.Fatalf("accepted aspect_type %q", ev.AspectType)
		}
		if ev.Updates != nil && len(ev.Updates) == 0 {
			t.Fatalf("empty updates should be nil: %+v", ev)
		}

		encoded, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("encode %+v: %v", ev, err)
		}
		if fast := ev.AppendJSON(nil); string(fast) != string(encoded) {
			t.Fatalf("AppendJSON differs from json.Marshal:\n got %s\nwant %s", fast, encoded)
		}
		again, err := DecodeEvent(encoded)
		if err != nil {
			t.Fatalf("decode(encode(%+v)) = %v (encoded %s)", ev, err, encoded)
		}
		if !reflect.DeepEqual(again, ev) {
			t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", again, ev)
		}
		if again.Key() != ev.Key() {
			t.Fatalf("round trip changed the key: %q != %q", again.Key(), ev.Key())
		}
	})
}

// stravaPayloads are the 5 documented event bodies in testdata/events.
func stravaPayloads(tb testing.TB) [][]byte {
	tb.Helper()
	files, err := filepath.Glob("testdata/events/*.json")
	if err != nil || len(files) != 5 {
		tb.Fatalf("want the 5 Strava payloads in testdata/events, got %v (%v)", files, err)
	}
	var out [][]byte
	for _, name := range files {
		body, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, body)
	}
	return out
}
