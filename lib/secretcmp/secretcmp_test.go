package secretcmp

import "testing"

func TestEqual(t *testing.T) {
	for _, c := range []struct {
		given, want string
		equal       bool
	}{
		{"0123456789abcdef", "0123456789abcdef", true},
		{"0123456789abcdeF", "0123456789abcdef", false},
		{"0123456789abcde", "0123456789abcdef", false},
		{"0123456789abcdef0", "0123456789abcdef", false},
		{"", "0123456789abcdef", false},
		{"", "", false}, // nothing configured: nothing matches
		{"x", "", false},
	} {
		if got := Equal(c.given, c.want); got != c.equal {
			t.Errorf("Equal(%q, %q) = %v, want %v", c.given, c.want, got, c.equal)
		}
	}
}
