package strava

import (
	"context"
	"encoding/json"
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
	var raw json.RawMessage
	resp, err := c.Do(ctx, req, &raw)
	if err != nil {
		return nil, resp, err
	}
	var a DetailedActivity
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, resp, fmt.Errorf("strava: GET /api/v3/activities/%d: decode answer: %w", id, err)
	}
	a.Raw = raw
	return &a, resp, nil
}
