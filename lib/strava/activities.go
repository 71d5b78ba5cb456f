package strava

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
)

// GetActivity fetches one activity with its owner's access token (GET
// /api/v3/activities/{id}). Strava answers 404 for an activity that is gone
// or that the token's scope may not see (IsNotFound), 401 for a bad token
// (IsUnauthorized).
func (c *Client) GetActivity(ctx context.Context, accessToken string, id int64) (*DetailedActivity, *Response, error) {
	if id <= 0 {
		return nil, nil, fmt.Errorf("strava: get activity: invalid id %d", id)
	}
	req, err := c.newRequest(ctx, http.MethodGet, "/api/v3/activities/"+strconv.FormatInt(id, 10), nil, nil, accessToken)
	if err != nil {
		return nil, nil, err
	}
	var a DetailedActivity
	resp, err := c.Do(ctx, req, &a)
	if err != nil {
		return nil, resp, err
	}
	return &a, resp, nil
}
