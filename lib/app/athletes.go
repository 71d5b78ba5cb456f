package app

import (
	"context"
	"fmt"

	"github.com/stravahook/stravahook/lib/processor"
	"github.com/stravahook/stravahook/lib/store"
)

// SaveAthlete stores a connected athlete (the connect callback, `athlete
// add`) and then makes the events held while they had to reconnect ready
// again. In that order: once the save cleared the "reconnect needed" mark,
// no drain holds their events any more (queue.Hold is guarded by it), so
// the release that follows leaves none behind.
func (a *App) SaveAthlete(ctx context.Context, athlete store.Athlete) error {
	if err := a.Store.SaveAthlete(ctx, athlete); err != nil {
		return err
	}
	n, err := a.Queue.Unhold(ctx, processor.HoldGroup(athlete.ID))
	if err != nil {
		return fmt.Errorf("%s saved, but the events held for them are not released yet (connecting again retries): %w", athlete, err)
	}
	if n > 0 {
		a.logger.Info("athlete connected again; held events are ready", "athlete", athlete.ID, "events", n)
	}
	return nil
}

// RemoveAthlete deletes the athlete's tokens and kept activities, and
// makes any events held for them ready, so that the next drain drops them
// (their owner is no longer connected) instead of keeping them forever.
func (a *App) RemoveAthlete(ctx context.Context, id int64) (activitiesRemoved int, err error) {
	n, err := a.Store.RemoveAthlete(ctx, id)
	if err != nil {
		return n, err
	}
	if _, err := a.Queue.Unhold(ctx, processor.HoldGroup(id)); err != nil {
		return n, fmt.Errorf("athlete %d removed, but the events held for them are not released: %w", id, err)
	}
	return n, nil
}
