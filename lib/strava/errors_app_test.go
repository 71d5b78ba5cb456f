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
