package strava

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeEventStravaPayloads(t *testing.T) {
	tests := []struct {
		file   string
		want   Event
		deauth bool
	}{
		{
			file: "create.json",
			want: Event{ObjectType: "activity", ObjectID: 1491968222, AspectType: "create", OwnerID: 28004310, SubscriptionID: 122449, EventTime: 1522986611},
		},
		{
			file: "update-title.json",
			want: Event{ObjectType: "activity", ObjectID: 1360128428, AspectType: "update", Updates: map[string]string{"title": "Messy"},
				OwnerID: 134815, SubscriptionID: 120475, EventTime: 1516126040},
		},
		{
			file: "deauthorize.json",
			want: Event{ObjectType: "athlete", ObjectID: 12972711, AspectType: "update", Updates: map[string]string{"authorized": "false"},
				OwnerID: 12972711, SubscriptionID: 217520, EventTime: 1656517720},
			deauth: true,
		},
		{
			// subscription_id as a string, object_id beyond 32 bits.
			file: "legacy-string-subscription.json",
			want: Event{ObjectType: "activity", ObjectID: 12312312312, AspectType: "create", OwnerID: 13408, SubscriptionID: 1, EventTime: 1297286541},
		},
		{
			file: "privacy.json",
			want: Event{ObjectType: "activity", ObjectID: 12345, AspectType: "update", Updates: map[string]string{"private": "true"},
				OwnerID: 67890, SubscriptionID: 999, EventTime: 1704067200},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := DecodeEvent([]byte(readTestdata(t, "events/"+tt.file)))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodeEvent = %+v, want %+v", got, tt.want)
			}
			if got.IsDeauthorization() != tt.deauth {
				t.Errorf("IsDeauthorization = %v, want %v", got.IsDeauthorization(), tt.deauth)
			}
		})
	}
}

func TestDecodeEventAccepts(t *testing.T) {
	const base = `"object_type":"athlete","object_id":134815,"aspect_type":"update","owner_id":134815,"event_time":1516126040`
	tests := []struct {
		name   string
		body   string
		check  func(Event) bool
		deauth bool
	}{
		{name: "authorized false as a boolean", body: `{` + base + `,"subscription_id":120475,"updates":{"authorized":false}}`, deauth: true,
			check: func(e Event) bool { return e.Updates["authorized"] == "false" }},
		{name: `authorized "false" as a string`, body: `{` + base + `,"subscription_id":120475,"updates":{"authorized":"false"}}`, deauth: true,
			check: func(e Event) bool { return e.Updates["authorized"] == "false" }},
		{name: "authorized true is no deauthorization", body: `{` + base + `,"subscription_id":120475,"updates":{"authorized":true}}`,
			check: func(e Event) bool { return e.Updates["authorized"] == "true" }},
		{name: "subscription_id as a numeric string", body: `{` + base + `,"subscription_id":"120475"}`,
			check: func(e Event) bool { return e.SubscriptionID == 120475 }},
		{name: "ids at the int64 limit", body: `{"object_type":"activity","object_id":9223372036854775807,"aspect_type":"delete","owner_id":9223372036854775807,"subscription_id":1,"event_time":1}`,
			check: func(e Event) bool { return e.ObjectID == 9223372036854775807 }},
		{name: "unknown fields ignored", body: `{` + base + `,"subscription_id":1,"future_field":{"x":[1,2]}}`,
			check: func(e Event) bool { return e.SubscriptionID == 1 }},
		{name: "whitespace around the object", body: "\n  {" + base + `,"subscription_id":1}` + " \r\n\t",
			check: func(e Event) bool { return e.OwnerID == 134815 }},
		{name: "null updates", body: `{` + base + `,"subscription_id":1,"updates":null}`,
			check: func(e Event) bool { return e.Updates == nil }},
		{name: "non-string updates kept as compact JSON", body: `{` + base + `,"subscription_id":1,"updates":{"n":12.5,"o":{ "a" : [1, 2] }}}`,
			check: func(e Event) bool { return e.Updates["n"] == "12.5" && e.Updates["o"] == `{"a":[1,2]}` }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeEvent([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(got) {
				t.Errorf("DecodeEvent = %+v", got)
			}
			if got.IsDeauthorization() != tt.deauth {
				t.Errorf("IsDeauthorization = %v, want %v", got.IsDeauthorization(), tt.deauth)
			}
		})
	}
}

func TestDecodeEventRejects(t *testing.T) {
	// valid is create.json with one field replaced by "%s" ("" removes it).
	event := func(field, value string) string {
		fields := []struct{ k, v string }{
			{"aspect_type", `"create"`}, {"event_time", "1522986611"}, {"object_id", "1491968222"},
			{"object_type", `"activity"`}, {"owner_id", "28004310"}, {"subscription_id", "122449"}, {"updates", "{}"},
		}
		var parts []string
		for _, f := range fields {
			v := f.v
			if f.k == field {
				if value == "" {
					continue
				}
				v = value
			}
			parts = append(parts, `"`+f.k+`":`+v)
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	valid := event("", "")
	if _, err := DecodeEvent([]byte(valid)); err != nil {
		t.Fatalf("the base event must be valid: %v", err)
	}

	tests := []struct {
		name, body, field string
	}{
		{"object_id missing", event("object_id", ""), "object_id"},
		{"object_id null", event("object_id", "null"), "object_id"},
		{"object_id negative", event("object_id", "-1491968222"), "object_id"},
		{"object_id zero", event("object_id", "0"), "object_id"},
		{"object_id float", event("object_id", "1491968222.5"), "object_id"},
		{"object_id float with zero fraction", event("object_id", "1.0"), "object_id"},
		{"object_id exponent", event("object_id", "1e9"), "object_id"},
		{"object_id string", event("object_id", `"1491968222"`), "object_id"},
		{"object_id boolean", event("object_id", "true"), "object_id"},
		{"object_id beyond int64", event("object_id", "9223372036854775808"), "object_id"},
		{"owner_id missing", event("owner_id", ""), "owner_id"},
		{"owner_id negative", event("owner_id", "-5"), "owner_id"},
		{"event_time missing", event("event_time", ""), "event_time"},
		{"event_time zero", event("event_time", "0"), "event_time"},
		{"event_time string", event("event_time", `"1522986611"`), "event_time"},
		{"subscription_id missing", event("subscription_id", ""), "subscription_id"},
		{"subscription_id zero string", event("subscription_id", `"0"`), "subscription_id"},
		{"subscription_id negative string", event("subscription_id", `"-1"`), "subscription_id"},
		{"subscription_id empty string", event("subscription_id", `""`), "subscription_id"},
		{"subscription_id signed string", event("subscription_id", `"+1"`), "subscription_id"},
		{"subscription_id padded string", event("subscription_id", `" 1"`), "subscription_id"},
		{"subscription_id float string", event("subscription_id", `"1.0"`), "subscription_id"},
		{"subscription_id word", event("subscription_id", `"abc"`), "subscription_id"},
		{"object_type unknown", event("object_type", `"club"`), "object_type"},
		{"object_type wrong case", event("object_type", `"Activity"`), "object_type"},
		{"object_type missing", event("object_type", ""), "object_type"},
		{"aspect_type unknown", event("aspect_type", `"created"`), "aspect_type"},
		{"aspect_type missing", event("aspect_type", ""), "aspect_type"},
		{"object_type a number", event("object_type", "1"), ""},
		{"updates not an object", event("updates", `"title"`), ""},
		{"empty body", "", ""},
		{"whitespace only", "  \n", ""},
		{"not JSON", "object_type=activity", ""},
		{"truncated", valid[:len(valid)-1], ""},
		{"array", "[" + valid + "]", ""},
		{"string", `"event"`, ""},
		{"null", "null", "object_type"},
		{"empty object", "{}", "object_type"},
		{"trailing object", valid + valid, ""},
		{"trailing object after space", valid + " " + valid, ""},
		{"trailing brace", valid + "}", ""},
		{"trailing bracket", valid + "]", ""},
		{"trailing garbage", valid + "x", ""},
		{"trailing number", valid + " 1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeEvent([]byte(tt.body))
			var ee *EventError
			if !errors.As(err, &ee) {
				t.Fatalf("DecodeEvent(%s) = %+v, %v; want an *EventError", tt.body, got, err)
			}
			if ee.Field != tt.field {
				t.Errorf("Field = %q, want %q (%v)", ee.Field, tt.field, err)
			}
			if !reflect.DeepEqual(got, Event{}) {
				t.Errorf("event = %+v, want the zero Event with an error", got)
			}
			if !strings.HasPrefix(err.Error(), "invalid event: ") || len(err.Error()) > 200 {
				t.Errorf("error message %q: want a short 'invalid event: ' message", err)
			}
		})
	}
}

// The message is what a 400 answer's body tells whoever sent the event.
func TestDecodeEventErrorMessages(t *testing.T) {
	valid := `{"aspect_type":"create","event_time":1522986611,"object_id":1491968222,"object_type":"activity","owner_id":28004310,"subscription_id":122449}`
	tests := []struct{ body, want string }{
		{strings.Replace(valid, `"activity"`, `"club"`, 1), "invalid event: object_type must be one of [activity athlete]"},
		{`{"object_id":0}`, "invalid event: object_type is missing"},
		{`[1]`, "invalid event: malformed JSON: the body must be a JSON object"},
		{`{"updates":"title"}`, "invalid event: malformed JSON: updates has the wrong type"},
		{valid + "x", "invalid event: malformed JSON: trailing data after the object"},
		{`{"object_type":`, "invalid event: malformed JSON: syntax error at byte 15"},
	}
	for _, tt := range tests {
		if _, err := DecodeEvent([]byte(tt.body)); errString(err) != tt.want {
			t.Errorf("DecodeEvent(%s): err = %q, want %q", tt.body, errString(err), tt.want)
		}
	}
}

func TestEventKey(t *testing.T) {
	a, err := DecodeEvent([]byte(readTestdata(t, "events/create.json")))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.Key(), "122449:activity:1491968222:create:28004310:1522986611"; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
	// A retry is the same delivery even if Strava re-encodes it.
	retry, err := DecodeEvent([]byte(`{"subscription_id":"122449","object_type":"activity","object_id":1491968222,"aspect_type":"create","owner_id":28004310,"event_time":1522986611}`))
	if err != nil {
		t.Fatal(err)
	}
	if retry.Key() != a.Key() {
		t.Errorf("retry key %q != %q", retry.Key(), a.Key())
	}
	deleted := a
	deleted.AspectType = AspectDelete
	later := a
	later.EventTime++
	if deleted.Key() == a.Key() || later.Key() == a.Key() {
		t.Error("distinct events must have distinct keys")
	}
}

func TestKeyAndAppendJSONMatchTheReflectiveForms(t *testing.T) {
	ev := Event{ObjectType: ObjectActivity, ObjectID: 12312312312, AspectType: AspectUpdate, Updates: map[string]string{"title": `Messy "ride" <3`, "private": "true"}, OwnerID: 134815, SubscriptionID: 120475, EventTime: 1516126040}
	if got, want := ev.Key(), "120475:activity:12312312312:update:134815:1516126040"; got != want {
		t.Fatalf("Key = %q, want %q", got, want)
	}
	want, _ := json.Marshal(ev)
	if got := ev.AppendJSON(nil); string(got) != string(want) {
		t.Fatalf("AppendJSON = %s, want %s", got, want)
	}
}

func TestParseKeyRebuildsEventsWithoutUpdates(t *testing.T) {
	for _, ev := range []Event{
		{ObjectType: "activity", ObjectID: 1360128428, AspectType: "create", OwnerID: 134815, SubscriptionID: 120475, EventTime: 1516126040},
		{ObjectType: "activity", ObjectID: 9223372036854775807, AspectType: "delete", OwnerID: 1, SubscriptionID: 1, EventTime: 1},
		{ObjectType: "athlete", ObjectID: 7, AspectType: "update", OwnerID: 7, SubscriptionID: 3, EventTime: 2},
	} {
		got, err := ParseKey(ev.Key())
		if err != nil || !reflect.DeepEqual(got, ev) {
			t.Errorf("ParseKey(%q) = %+v, %v; want %+v", ev.Key(), got, err, ev)
		}
	}
}

func TestParseKeyRejectsWhatKeyNeverMakes(t *testing.T) {
	for _, key := range []string{
		"", "1:activity:2:create:3", "1:activity:2:create:3:4:5", "x:activity:2:create:3:4",
		"1:club:2:create:3:4", "1:activity:2:rename:3:4", "1:activity:0:create:3:4",
		"1:activity:-2:create:3:4", "1:activity:02:create:3:4", "1:activity:2:create:3:+4",
	} {
		if ev, err := ParseKey(key); err == nil {
			t.Errorf("ParseKey(%q) = %+v, want an error", key, ev)
		}
	}
}

func TestPayloadIsNilExactlyWhenTheKeyHoldsTheEvent(t *testing.T) {
	create := Event{ObjectType: "activity", ObjectID: 2, AspectType: "create", OwnerID: 3, SubscriptionID: 4, EventTime: 5}
	if p := create.Payload(); p != nil {
		t.Errorf("create: payload %s, want nil", p)
	}
	deauth := Event{ObjectType: "athlete", ObjectID: 3, AspectType: "update", OwnerID: 3, SubscriptionID: 4, EventTime: 5, Updates: map[string]string{"authorized": "false"}}
	got, err := DecodeEvent(deauth.Payload())
	if err != nil || !reflect.DeepEqual(got, deauth) {
		t.Errorf("deauthorization: payload decodes to %+v, %v; want %+v", got, err, deauth)
	}
}
