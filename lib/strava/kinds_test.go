package strava_test

import (
	"testing"

	"github.com/stravahook/stravahook/lib/strava"
)

func TestEveryEventShapeHasItsKind(t *testing.T) {
	for _, tc := range []struct {
		body string
		want strava.Kind
	}{
		{`{"object_type":"activity","object_id":1,"aspect_type":"create","owner_id":2,"subscription_id":3,"event_time":4}`, strava.KindFetch},
		{`{"object_type":"activity","object_id":1,"aspect_type":"update","updates":{"title":"x"},"owner_id":2,"subscription_id":3,"event_time":4}`, strava.KindRefetch},
		{`{"object_type":"activity","object_id":1,"aspect_type":"delete","owner_id":2,"subscription_id":3,"event_time":4}`, strava.KindDelete},
		{`{"object_type":"athlete","object_id":2,"aspect_type":"update","updates":{"authorized":"false"},"owner_id":2,"subscription_id":3,"event_time":4}`, strava.KindDeauthorize},
		{`{"object_type":"athlete","object_id":2,"aspect_type":"update","updates":{"authorized":false},"owner_id":2,"subscription_id":3,"event_time":4}`, strava.KindDeauthorize},
		{`{"object_type":"athlete","object_id":2,"aspect_type":"update","updates":{"authorized":"true"},"owner_id":2,"subscription_id":3,"event_time":4}`, strava.KindNone},
		{`{"object_type":"athlete","object_id":2,"aspect_type":"update","owner_id":2,"subscription_id":3,"event_time":4}`, strava.KindNone},
		{`{"object_type":"athlete","object_id":2,"aspect_type":"create","owner_id":2,"subscription_id":3,"event_time":4}`, strava.KindNone},
	} {
		ev, err := strava.DecodeEvent([]byte(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if got := ev.Kind(); got != tc.want {
			t.Errorf("%s: Kind = %d, want %d", tc.body, got, tc.want)
		}
		// An event stored by its key alone (no updates) has the same kind.
		if len(ev.Updates) == 0 {
			back, err := strava.ParseKey(ev.Key())
			if err != nil || back.Kind() != tc.want {
				t.Errorf("ParseKey(%s) = kind %d, %v; want %d", ev.Key(), back.Kind(), err, tc.want)
			}
		}
	}
}

func TestDecodersRefuseTypesOutsideTheTable(t *testing.T) {
	for _, body := range []string{
		`{"object_type":"club","object_id":1,"aspect_type":"create","owner_id":2,"subscription_id":3,"event_time":4}`,
		`{"object_type":"activity","object_id":1,"aspect_type":"archive","owner_id":2,"subscription_id":3,"event_time":4}`,
	} {
		if ev, err := strava.DecodeEvent([]byte(body)); err == nil {
			t.Errorf("DecodeEvent(%s) = %+v, want an error", body, ev)
		}
	}
	for _, key := range []string{"3:club:1:create:2:4", "3:activity:1:archive:2:4"} {
		if ev, err := strava.ParseKey(key); err == nil {
			t.Errorf("ParseKey(%s) = %+v, want an error", key, ev)
		}
	}
}
