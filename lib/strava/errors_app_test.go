package strava

import "testing"

func TestRefusedAppCredentialsAreNotARefusedRefreshToken(t *testing.T) {
	badSecret := &Error{StatusCode: 400, Message: "Bad Request", Errors: []ErrorDetail{{Resource: "Application", Field: "client_secret", Code: "invalid"}}}
	badToken := &Error{StatusCode: 400, Message: "Bad Request", Errors: []ErrorDetail{{Resource: "RefreshToken", Field: "refresh_token", Code: "invalid"}}}
	if IsRefreshRefused(badSecret) || !IsAppCredentialsRejected(badSecret) {
		t.Fatal("a wrong client secret was read as the athlete revoking access")
	}
	if !IsRefreshRefused(badToken) || IsAppCredentialsRejected(badToken) {
		t.Fatal("a refused refresh token was not recognized")
	}
}

func TestOnlyStravasOwnRefusalIsARefusedRefresh(t *testing.T) {
	details := []ErrorDetail{{Resource: "RefreshToken", Field: "refresh_token", Code: "invalid"}}
	for _, e := range []*Error{
		{StatusCode: 404, Message: "Record Not Found", Errors: []ErrorDetail{{Resource: "Path", Field: "", Code: "invalid"}}}, // wrong base URL
		{StatusCode: 403, Message: "Forbidden"},       // a proxy's page
		{StatusCode: 408, Message: "Request Timeout"}, // a proxy's timeout
		{StatusCode: 401, Message: "Unauthorized"},    // no Strava JSON
		{StatusCode: 400, Message: "Bad Request"},     // no Strava JSON
		{StatusCode: 429, Message: "Rate Limit Exceeded", Errors: details},
	} {
		if IsRefreshRefused(e) {
			t.Errorf("%v counted as a refused refresh token", e)
		}
	}
	if !IsRefreshRefused(&Error{StatusCode: 400, Message: "Bad Request", Errors: details}) {
		t.Error("Strava's documented refusal not recognized")
	}
}
