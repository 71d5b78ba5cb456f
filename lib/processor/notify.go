package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/stravahook/stravahook/lib/notify"
	"github.com/stravahook/stravahook/lib/strava"
)

// minDeliveryWindow is the time deliveries get after the Strava work even
// when that work spent the budget, so that a busy queue does not starve
// the notifications. A send started in it may take notify's Timeout more:
// Budget + callTimeout + this + that stays well inside maxDuration.
const minDeliveryWindow = 2 * time.Second

// storeNotifications stores the notifications of a claim's done groups
// before settle acks their events: a drain that dies in between redoes the
// events, and their notifications (same ids) are not queued twice. When
// storing fails, those groups are not acked either (left leased, redone
// after the lease): no event is acked without its notification.
func (d *drain) storeNotifications(ctx context.Context, groups []*group) {
	n := d.p.cfg.Notifier
	if !n.Enabled() {
		return
	}
	now := d.p.cfg.Now()
	var (
		ns   []notify.Notification
		from []*group
	)
	for _, g := range groups {
		if nt, ok := notificationOf(g, now); ok {
			ns = append(ns, nt)
			from = append(from, g)
		}
	}
	if len(ns) == 0 {
		return
	}
	// Stored even when the drain is being stopped: settle still acks the
	// done events then.
	sctx, cancel := context.WithTimeout(ctx, redisTimeout)
	if ctx.Err() != nil {
		sctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	}
	err := n.Store(sctx, ns)
	cancel()
	if err != nil {
		for _, g := range from {
			g.outcome = outcomeAbandoned
		}
		d.p.logger.Error("notifications not stored; their events stay leased and are redone after the lease", "events", len(from), "error", err)
		d.noteLost(err)
		return
	}
	d.count(func(s *Summary) { s.Notifications.Stored += len(ns) })
	d.delivering.Kick()
}

// notificationOf is what a group's work tells the user, if anything: its
// id derives from the deciding event, so redoing the event gives the same
// notification.
func notificationOf(g *group, now time.Time) (notify.Notification, bool) {
	if g.outcome != outcomeDone || g.skipAll {
		return notify.Notification{}, false
	}
	ev := g.decider
	seed := ev.Key()
	switch g.kind {
	case strava.KindFetch, strava.KindDelete:
		owner, id := ev.OwnerID, ev.ObjectID
		// One lane per activity: its created, updated and deleted arrive
		// in that order; other activities go in parallel.
		lane := strconv.FormatInt(owner, 10) + ":" + strconv.FormatInt(id, 10)
		switch {
		case g.fetched != nil:
			typ := notify.TypeActivityUpdated
			if hasCreate(g) {
				typ = notify.TypeActivityCreated
			}
			return notify.NewNotification(typ, lane, seed, now, notify.ActivityData(owner, id, rawActivity(g.fetched))), true
		case g.gone && !hasCreate(g):
			return notify.NewNotification(notify.TypeActivityDeleted, lane, seed, now, notify.DeletedData(owner, id)), true
		}
		// Created and gone before anyone heard of it: nothing to say.
	case strava.KindDeauthorize:
		return notify.NewNotification(notify.TypeAthleteDeauthorized, strconv.FormatInt(ev.ObjectID, 10), seed, now,
			notify.DeauthorizedData(ev.ObjectID)), true
	}
	return notify.Notification{}, false
}

func hasCreate(g *group) bool {
	for _, m := range g.msgs {
		if ev, err := decode(m); err == nil && ev.AspectType == strava.AspectCreate {
			return true
		}
	}
	return false
}

// rawActivity is the activity exactly as Strava answered it; re-encoded
// only when the client gave no raw answer (a test double).
func rawActivity(a *strava.DetailedActivity) []byte {
	if len(a.Raw) > 0 {
		return a.Raw
	}
	b, err := json.Marshal(a)
	if err != nil {
		return []byte("null")
	}
	return b
}

// startDelivering delivers notifications while the Strava work goes on,
// each time a claim's notifications were stored, so that the endpoints'
// latency and Strava's overlap instead of adding up. The returned func
// ends it: one last pass (until the budget ends, but for at least
// minDeliveryWindow), and the summary. Failures are counted in the
// summary and logged; they never fail the drain, nor hold back the Strava
// work (each endpoint has a goroutine of its own).
func (d *drain) startDelivering(ctx context.Context) (finish func()) {
	n := d.p.cfg.Notifier
	if !n.Enabled() {
		return func() {}
	}
	d.delivering = n.Start(ctx, d.deadline)
	return func() {
		last := d.deadline
		if least := time.Now().Add(minDeliveryWindow); least.After(last) {
			last = least
		}
		got := d.delivering.Finish(last)
		d.count(func(s *Summary) {
			got.Stored = s.Notifications.Stored
			*s.Notifications = got
		})
	}
}

func notificationAttrs(s *notify.Summary) []any {
	if s == nil {
		return nil
	}
	attrs := []any{"notifications", fmt.Sprintf("stored=%d delivered=%d retrying=%d dead=%d", s.Stored, s.Delivered, s.Retrying, s.Dead)}
	if s.Error != "" {
		attrs = append(attrs, "notifications_error", s.Error)
	}
	return attrs
}
