package strava

import (
	"context"
	"net/http"
)

// GetAuthenticatedAthlete is the athlete who owns accessToken (GET
// /api/v3/athlete): how we learn whose token we were handed.
func (c *Client) GetAuthenticatedAthlete(ctx context.Context, accessToken string) (*Athlete, *Response, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/api/v3/athlete", nil, nil, accessToken)
	if err != nil {
		return nil, nil, err
	}
	var a Athlete
	resp, err := c.Do(ctx, req, &a)
	if err != nil {
		return nil, resp, err
	}
	return &a, resp, nil
}
