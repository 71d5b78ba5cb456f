package notify

import "testing"

// What an operator reads of an endpoint (logs, `notify` output, a refused
// NOTIFY_URL entry): scheme, host and path, with user info and query (which
// may hold credentials) replaced by "…".
func TestRedactedEndpointShowsWhereButNoCredentials(t *testing.T) {
	for raw, want := range map[string]string{
		"https://hooks.example/in":                   "https://hooks.example/in",
		"https://user:pa55@hooks.example/in":         "https://…@hooks.example/in",
		"https://hooks.example/in?token=s3cret":      "https://hooks.example/in?…",
		"https://user:pa55@hooks.example/in?token=s": "https://…@hooks.example/in?…",
		"https:///no-host":                           "(unparsable URL)",
		"http://[::1":                                "(unparsable URL)",
	} {
		if got := (Endpoint{URL: raw}).Redacted(); got != want {
			t.Errorf("Redacted(%q) = %q, want %q", raw, got, want)
		}
	}
	_, err := ParseEndpoints("ftp://user:pa55@files.example/drop?token=s3cret")
	if want := "NOTIFY_URL entry 1 (ftp://…@files.example/drop?…) is not an http(s) URL"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}
