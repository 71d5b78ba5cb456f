package strava

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// Push subscriptions belong to the application, so these calls carry the
// client id and secret instead of an athlete's token. Strava allows one
// subscription per application.

const subscriptionsPath = "/api/v3/push_subscriptions"

// CreateSubscription asks Strava to send our application's events to
// callbackURL (POST /api/v3/push_subscriptions). Before answering, Strava
// validates the callback with a GET carrying verifyToken, so that GET must
// already be served. Strava answers only the id; CallbackURL is filled in
// from the request.
func (c *Client) CreateSubscription(ctx context.Context, callbackURL, verifyToken string) (*Subscription, error) {
	if callbackURL == "" {
		return nil, errors.New("strava: create subscription: empty callback URL")
	}
	form := c.appCredentials()
	form.Set("callback_url", callbackURL)
	form.Set("verify_token", verifyToken)
	req, err := c.newRequest(ctx, http.MethodPost, subscriptionsPath, nil, form, "")
	if err != nil {
		return nil, err
	}
	var sub Subscription
	if _, err := c.do(ctx, req, &sub, verifyToken); err != nil {
		return nil, err
	}
	if sub.ID <= 0 {
		return nil, errors.New("strava: create subscription: answer has no subscription id")
	}
	if sub.CallbackURL == "" {
		sub.CallbackURL = callbackURL
	}
	return &sub, nil
}

// ListSubscriptions returns our application's subscriptions (GET
// /api/v3/push_subscriptions): none or one.
func (c *Client) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	req, err := c.newRequest(ctx, http.MethodGet, subscriptionsPath, c.appCredentials(), nil, "")
	if err != nil {
		return nil, err
	}
	var subs []Subscription
	if _, err := c.Do(ctx, req, &subs); err != nil {
		return nil, err
	}
	return subs, nil
}

// DeleteSubscription stops event delivery to our callback (DELETE
// /api/v3/push_subscriptions/{id}; Strava answers 204).
func (c *Client) DeleteSubscription(ctx context.Context, id int64) error {
	if id <= 0 {
		return fmt.Errorf("strava: delete subscription: invalid id %d", id)
	}
	req, err := c.newRequest(ctx, http.MethodDelete, subscriptionsPath+"/"+strconv.FormatInt(id, 10), c.appCredentials(), nil, "")
	if err != nil {
		return err
	}
	_, err = c.Do(ctx, req, nil)
	return err
}

func (c *Client) appCredentials() url.Values {
	return url.Values{"client_id": {c.clientID}, "client_secret": {c.clientSecret}}
}
