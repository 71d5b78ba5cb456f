// Package strava owns everything that speaks Strava's language: the webhook
// Event and its decoder, the API's types (DetailedActivity, Athlete, Token,
// Subscription), and the Client that calls Strava's REST API and OAuth
// endpoints, with Strava's error bodies surfaced as *Error and its
// rate-limit headers parsed into RateLimit.
//
// It imports nothing else of stravahook's, so every other package can use
// its types.
package strava
