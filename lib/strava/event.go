package strava

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Object and aspect types Strava sends in webhook events.
const (
	ObjectActivity = "activity"
	ObjectAthlete  = "athlete"

	AspectCreate = "create"
	AspectUpdate = "update"
	AspectDelete = "delete"
)

// Event is one webhook notification, normalized: every id is an int64 and
// every value of Updates is a string ("false", "true", a title…), whatever
// JSON type Strava used for it.
type Event struct {
	ObjectType     string            `json:"object_type"`
	ObjectID       int64             `json:"object_id"`
	AspectType     string            `json:"aspect_type"`
	Updates        map[string]string `json:"updates,omitempty"`
	OwnerID        int64             `json:"owner_id"`
	SubscriptionID int64             `json:"subscription_id"`
	EventTime      int64             `json:"event_time"`
}

// IsDeauthorization reports whether the event says the athlete revoked our
// access (an athlete update with authorized=false).
func (e Event) IsDeauthorization() bool { return e.Kind() == KindDeauthorize }

// Key identifies a delivery: Strava retries resend the same key, distinct
// events never share one.
func (e Event) Key() string {
	b := make([]byte, 0, 80)
	b = strconv.AppendInt(b, e.SubscriptionID, 10)
	b = append(append(append(b, ':'), e.ObjectType...), ':')
	b = strconv.AppendInt(b, e.ObjectID, 10)
	b = append(append(append(b, ':'), e.AspectType...), ':')
	b = strconv.AppendInt(b, e.OwnerID, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, e.EventTime, 10)
	return string(b)
}

// ParseKey rebuilds the event whose Key is key. The key holds every field
// but Updates, so for an event without updates it is the whole event: the
// intake stores such events by key alone.
func ParseKey(key string) (Event, error) {
	fields := strings.Split(key, ":")
	if len(fields) != 6 {
		return Event{}, &EventError{Reason: fmt.Sprintf("event key %q does not have 6 fields", key)}
	}
	var ev Event
	var err error
	if ev.SubscriptionID, err = keyID("subscription_id", fields[0]); err != nil {
		return Event{}, err
	}
	if ev.ObjectType, err = oneOf("object_type", &fields[1], objectTypes...); err != nil {
		return Event{}, err
	}
	if ev.ObjectID, err = keyID("object_id", fields[2]); err != nil {
		return Event{}, err
	}
	if ev.AspectType, err = oneOf("aspect_type", &fields[3], aspectTypes...); err != nil {
		return Event{}, err
	}
	if ev.OwnerID, err = keyID("owner_id", fields[4]); err != nil {
		return Event{}, err
	}
	if ev.EventTime, err = keyID("event_time", fields[5]); err != nil {
		return Event{}, err
	}
	return ev, nil
}

func keyID(field, text string) (int64, error) {
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != text {
		return 0, &EventError{Field: field, Reason: "must be a positive integer"}
	}
	return n, nil
}

// Payload is what must be stored beside the event's Key to rebuild it: nil
// when the key holds the whole event (no updates: every create and delete),
// else the event's JSON.
func (e Event) Payload() []byte {
	if len(e.Updates) == 0 {
		return nil
	}
	return e.AppendJSON(make([]byte, 0, 256))
}

// AppendJSON appends the event's JSON, the same bytes as json.Marshal
// gives, without reflection: the intake encodes one event per request.
func (e Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"object_type":`...)
	b = strconv.AppendQuote(b, e.ObjectType)
	b = append(b, `,"object_id":`...)
	b = strconv.AppendInt(b, e.ObjectID, 10)
	b = append(b, `,"aspect_type":`...)
	b = strconv.AppendQuote(b, e.AspectType)
	if len(e.Updates) > 0 {
		updates, err := json.Marshal(e.Updates)
		if err == nil { // a map of strings always encodes
			b = append(append(b, `,"updates":`...), updates...)
		}
	}
	b = append(b, `,"owner_id":`...)
	b = strconv.AppendInt(b, e.OwnerID, 10)
	b = append(b, `,"subscription_id":`...)
	b = strconv.AppendInt(b, e.SubscriptionID, 10)
	b = append(b, `,"event_time":`...)
	b = strconv.AppendInt(b, e.EventTime, 10)
	return append(b, '}')
}

// EventError says why a webhook body is not a valid event. Its message names
// the offending field and never echoes more than a short excerpt.
type EventError struct {
	Field  string
	Reason string
}

func (e *EventError) Error() string {
	if e.Field == "" {
		return "invalid event: " + e.Reason
	}
	return fmt.Sprintf("invalid event: %s %s", e.Field, e.Reason)
}

// wireEvent keeps each field raw so that DecodeEvent can accept the several
// encodings Strava has used (numeric strings, booleans as strings).
type wireEvent struct {
	ObjectType     *string                    `json:"object_type"`
	ObjectID       json.RawMessage            `json:"object_id"`
	AspectType     *string                    `json:"aspect_type"`
	Updates        map[string]json.RawMessage `json:"updates"`
	OwnerID        json.RawMessage            `json:"owner_id"`
	SubscriptionID json.RawMessage            `json:"subscription_id"`
	EventTime      json.RawMessage            `json:"event_time"`
}

// DecodeEvent parses and validates one webhook body. Unknown fields are
// ignored; a missing or invalid field is an *EventError.
func DecodeEvent(body []byte) (Event, error) {
	// Most bodies are one of the few shapes Strava sends; the reflective
	// decoder handles everything else and produces every error.
	if ev, ok := decodeEventFast(body); ok {
		return ev, nil
	}
	return decodeEventSlow(body)
}

// decodeEventSlow is the reference decoder: encoding/json with raw fields.
func decodeEventSlow(body []byte) (Event, error) {
	// Unmarshal checks the whole body first, so trailing data after the
	// object (another object, a stray '}') is a syntax error too.
	var w wireEvent
	if err := json.Unmarshal(body, &w); err != nil {
		return Event{}, &EventError{Reason: "malformed JSON: " + shortJSONError(err)}
	}
	var ev Event
	var err error
	if ev.ObjectType, err = oneOf("object_type", w.ObjectType, objectTypes...); err != nil {
		return Event{}, err
	}
	if ev.AspectType, err = oneOf("aspect_type", w.AspectType, aspectTypes...); err != nil {
		return Event{}, err
	}
	if ev.ObjectID, err = positiveID("object_id", w.ObjectID, false); err != nil {
		return Event{}, err
	}
	if ev.OwnerID, err = positiveID("owner_id", w.OwnerID, false); err != nil {
		return Event{}, err
	}
	if ev.SubscriptionID, err = positiveID("subscription_id", w.SubscriptionID, true); err != nil {
		return Event{}, err
	}
	if ev.EventTime, err = positiveID("event_time", w.EventTime, false); err != nil {
		return Event{}, err
	}
	if len(w.Updates) > 0 {
		ev.Updates = make(map[string]string, len(w.Updates))
		for k, raw := range w.Updates {
			ev.Updates[k] = scalarString(raw)
		}
	}
	return ev, nil
}

func oneOf(field string, got *string, allowed ...string) (string, error) {
	if got == nil {
		return "", &EventError{Field: field, Reason: "is missing"}
	}
	for _, a := range allowed {
		if *got == a {
			return a, nil
		}
	}
	return "", &EventError{Field: field, Reason: fmt.Sprintf("must be one of %v", allowed)}
}

// positiveID parses a JSON integer > 0 that may exceed 32 bits. With
// allowString, a JSON string of digits is accepted too (Strava's legacy
// subscription_id form).
func positiveID(field string, raw json.RawMessage, allowString bool) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return 0, &EventError{Field: field, Reason: "is missing"}
	}
	text := raw
	if raw[0] == '"' {
		if !allowString {
			return 0, &EventError{Field: field, Reason: "must be a number"}
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, &EventError{Field: field, Reason: "must be a number"}
		}
		if s == "" || strings.Trim(s, "0123456789") != "" {
			return 0, &EventError{Field: field, Reason: "must be a positive integer"}
		}
		text = []byte(s)
	}
	n, err := strconv.ParseInt(string(text), 10, 64)
	if err != nil || n <= 0 {
		return 0, &EventError{Field: field, Reason: "must be a positive integer"}
	}
	return n, nil
}

// scalarString renders an updates value as text: strings unquoted, booleans
// and numbers as written, anything else as its compact JSON. The result is
// valid UTF-8 (as decoded strings are), so an Event survives a JSON round
// trip unchanged.
func scalarString(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err == nil {
		return strings.ToValidUTF8(buf.String(), "\uFFFD")
	}
	return strings.ToValidUTF8(string(raw), "\uFFFD")
}

func shortJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn) && strings.Contains(syn.Error(), "after top-level value"):
		return "trailing data after the object"
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return "the body must be a JSON object"
		}
		return fmt.Sprintf("%s has the wrong type", typ.Field)
	default:
		return truncate(err.Error(), 80)
	}
}
