package processor

import (
	"strconv"

	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/strava"
)

// outcome is how a group's work ended; it decides what settle does with
// its events.
type outcome int

const (
	outcomeUnstarted outcome = iota // not begun: handed back to the queue
	outcomeDone                     // work done: acked
	outcomeFailed                   // queue.Fail was called for each event
	outcomeRelease                  // stopped by the rate limit: handed back, no attempt counted
	outcomeAbandoned                // the drain's context ended mid-work: left leased
	outcomeHold                     // the owner must reconnect: held for them, no attempt counted
	outcomeDrop                     // the owner is not connected: forgotten, no dedupe record
)

// group is every claimed event about one object (object type and id).
// Only the latest event (the decider) matters: a create followed by a
// delete needs no Strava call, several creates need one.
type group struct {
	kind     strava.Kind // KindFetch (for a change too), KindDelete, KindDeauthorize or KindNone
	decider  strava.Event
	msgs     []queue.Message
	outcome  outcome
	deauthAt bool // some event of the group is a deauthorization
	// skipAll says every event was acked without work of its own (the
	// athlete was removed in this drain, or a deauthorization was not
	// confirmed); otherwise the decider did the work.
	skipAll bool
	// fetched is the activity kept for a KindFetch group; gone says its
	// kept copy was deleted (a delete event, a 404): what the group's
	// notification says (notify.go).
	fetched *strava.DetailedActivity
	gone    bool
}

// describe names the group's object for logs and error causes.
func (g *group) describe() string {
	return g.decider.ObjectType + " " + strconv.FormatInt(g.decider.ObjectID, 10)
}

type undecodable struct {
	msg queue.Message
	err error
}

// coalesce groups msgs by object, in the order their first event was
// claimed (oldest first), and sets each group's decider and kind.
func coalesce(msgs []queue.Message) ([]*group, []undecodable) {
	var (
		groups []*group
		bad    []undecodable
		byKey  = map[string]*group{}
	)
	for _, m := range msgs {
		ev, err := decode(m)
		if err != nil {
			bad = append(bad, undecodable{msg: m, err: err})
			continue
		}
		key := ev.ObjectType + ":" + strconv.FormatInt(ev.ObjectID, 10)
		g := byKey[key]
		if g == nil {
			g = &group{decider: ev}
			byKey[key] = g
			groups = append(groups, g)
		} else if supersedes(ev, g.decider) {
			g.decider = ev
		}
		g.msgs = append(g.msgs, m)
		if ev.IsDeauthorization() {
			g.deauthAt = true
		}
	}
	for _, g := range groups {
		g.kind = kindOf(g)
	}
	return groups, bad
}

// decode returns the claimed event: its payload, or for an event the
// intake stored without one (no updates), its key.
func decode(m queue.Message) (strava.Event, error) {
	if len(m.Payload) == 0 {
		return strava.ParseKey(m.ID)
	}
	return strava.DecodeEvent(m.Payload)
}

// supersedes reports whether ev decides over current: it is later, or as
// late and a delete (a create and a delete in the same second most likely
// mean the activity is gone, and a needless fetch would only 404).
func supersedes(ev, current strava.Event) bool {
	return ev.EventTime > current.EventTime || ev.EventTime == current.EventTime &&
		ev.AspectType == strava.AspectDelete && current.AspectType != strava.AspectDelete
}

// kindOf is what the group's decider asks for (strava's table of event
// kinds); an athlete's group is a deauthorization when any of its events
// is one, even if a later athlete update decides.
func kindOf(g *group) strava.Kind {
	if g.deauthAt {
		return strava.KindDeauthorize
	}
	if k := g.decider.Kind(); k != strava.KindRefetch {
		return k
	}
	return strava.KindFetch // a change is fetched like a creation
}
