package stravatest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/stravahook/stravahook/lib/strava"
)

// Trigger kinds: what an athlete does at Strava that makes it push an
// event.
const (
	TriggerCreate      = "create"      // uploads a new activity
	TriggerUpdate      = "update"      // renames an activity
	TriggerDelete      = "delete"      // deletes an activity
	TriggerDeauthorize = "deauthorize" // revokes the application
)

// TriggerResult is what Trigger did.
type TriggerResult struct {
	Kind      string                   `json:"kind"`
	AthleteID int64                    `json:"athlete_id"`
	Activity  *strava.DetailedActivity `json:"activity,omitempty"`
	Push      PushResult               `json:"push"`
}

// Trigger plays one athlete action at Strava and pushes its event:
// create makes up a new activity (activityID, when non-zero, is its id),
// update renames activityID, delete removes it, deauthorize revokes the
// athlete. athleteID 0 is the first authorized athlete; activityID 0 for
// update and delete is that athlete's newest activity.
func (s *Server) Trigger(ctx context.Context, kind string, athleteID, activityID int64) (TriggerResult, error) {
	if athleteID == 0 {
		athleteID = s.firstAuthorized()
		if athleteID == 0 {
			return TriggerResult{}, errors.New("stravatest: no athlete has authorized the application yet")
		}
	}
	res := TriggerResult{Kind: kind, AthleteID: athleteID}
	var ev strava.Event
	switch kind {
	case TriggerCreate:
		act := s.NewActivity(athleteID, "")
		if activityID != 0 {
			s.DeleteActivity(act.ID)
			act.ID = activityID
			act = s.AddActivity(act)
		}
		res.Activity = &act
		ev = ActivityEvent(strava.AspectCreate, athleteID, act.ID, nil)
	case TriggerUpdate, TriggerDelete:
		if activityID == 0 {
			acts := s.Activities(athleteID)
			if len(acts) == 0 {
				return res, fmt.Errorf("stravatest: athlete %d has no activities", athleteID)
			}
			activityID = acts[0].ID
		}
		act, ok := s.Activity(activityID)
		if !ok {
			return res, fmt.Errorf("stravatest: no activity %d", activityID)
		}
		if kind == TriggerUpdate {
			title := act.Name + " (edited " + s.now().UTC().Format("15:04:05") + ")"
			s.UpdateActivity(activityID, func(a *strava.DetailedActivity) { a.Name = title })
			act.Name = title
			ev = ActivityEvent(strava.AspectUpdate, athleteID, activityID, map[string]string{"title": title})
		} else {
			s.DeleteActivity(activityID)
			ev = ActivityEvent(strava.AspectDelete, athleteID, activityID, nil)
		}
		res.Activity = &act
	case TriggerDeauthorize:
		s.Revoke(athleteID)
		ev = DeauthorizationEvent(athleteID)
	default:
		return res, fmt.Errorf("stravatest: unknown trigger %q: want create, update, delete or deauthorize", kind)
	}
	push, err := s.Push(ctx, ev)
	res.Push = push
	return res, err
}

func (s *Server) firstAuthorized() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.athleteOrder {
		if s.athletes[id].authorized {
			return id
		}
	}
	return 0
}

// triggerHandler is POST /_sandbox/trigger (form kind, athlete, activity):
// Trigger over HTTP, for `stravahook trigger` in another process.
func (s *Server) triggerHandler(w http.ResponseWriter, r *http.Request) {
	athleteID, err1 := optionalID(r.FormValue("athlete"))
	activityID, err2 := optionalID(r.FormValue("activity"))
	if err := errors.Join(err1, err2); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	// Three attempts of at most 2 s each, plus the pauses between them.
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	res, err := s.Trigger(ctx, r.FormValue("kind"), athleteID, activityID)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func optionalID(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("invalid id %q: want a positive integer", v)
	}
	return id, nil
}

// stateHandler is GET /_sandbox/state: what the double holds, for a look
// from another process.
func (s *Server) stateHandler(w http.ResponseWriter, r *http.Request) {
	type athleteState struct {
		strava.Athlete
		Authorized bool  `json:"authorized"`
		Activities int   `json:"activities"`
		Newest     int64 `json:"newest_activity_id,omitempty"`
	}
	var out struct {
		Athletes     []athleteState       `json:"athletes"`
		Subscription *strava.Subscription `json:"subscription,omitempty"`
		Calls        map[Route]int        `json:"calls"`
		RateLimit    strava.RateLimit     `json:"rate_limit"`
	}
	for _, a := range s.Athletes() {
		acts := s.Activities(a.ID)
		st := athleteState{Athlete: a, Authorized: s.Authorized(a.ID), Activities: len(acts)}
		if len(acts) > 0 {
			st.Newest = acts[0].ID
		}
		out.Athletes = append(out.Athletes, st)
	}
	if sub, ok := s.Subscription(); ok {
		out.Subscription = &sub
	}
	s.mu.Lock()
	out.Calls = maps.Clone(s.calls)
	s.mu.Unlock()
	out.RateLimit = s.RateLimit()
	writeJSON(w, http.StatusOK, out)
}
