package strava

import "slices"

// Kind is what a webhook event asks of its receiver.
type Kind uint8

const (
	KindNone        Kind = iota // nothing to do (an athlete event other than a deauthorization)
	KindFetch                   // an activity was created: fetch it
	KindRefetch                 // an activity was changed (title, type, privacy): fetch it again
	KindDelete                  // an activity was deleted: forget it
	KindDeauthorize             // the athlete revoked the application's access: forget them
)

// eventKinds is the one table of the events Strava sends (its "Webhook
// Events API" documentation): the object and aspect types the decoders
// accept are those listed here, and Event.Kind reads what each asks for.
// An athlete update is a deauthorization only when its updates say
// authorized "false" (Event.Kind checks that).
var eventKinds = []struct {
	object, aspect string
	kind           Kind
}{
	{ObjectActivity, AspectCreate, KindFetch},
	{ObjectActivity, AspectUpdate, KindRefetch},
	{ObjectActivity, AspectDelete, KindDelete},
	{ObjectAthlete, AspectUpdate, KindDeauthorize},
	{ObjectAthlete, AspectCreate, KindNone},
	{ObjectAthlete, AspectDelete, KindNone},
}

// objectTypes and aspectTypes are the values the decoders accept, in the
// table's order.
var objectTypes, aspectTypes = func() (objects, aspects []string) {
	for _, k := range eventKinds {
		if !slices.Contains(objects, k.object) {
			objects = append(objects, k.object)
		}
		if !slices.Contains(aspects, k.aspect) {
			aspects = append(aspects, k.aspect)
		}
	}
	return objects, aspects
}()

// Kind says what the event asks for.
func (e Event) Kind() Kind {
	for _, k := range eventKinds {
		if k.object != e.ObjectType || k.aspect != e.AspectType {
			continue
		}
		if k.kind == KindDeauthorize && e.Updates["authorized"] != "false" {
			return KindNone
		}
		return k.kind
	}
	return KindNone
}
