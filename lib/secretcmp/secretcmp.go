// Package secretcmp owns how stravahook compares a secret someone sent
// (a bearer token, a verify token, a callback secret) with the configured
// one: in a time that depends on neither's content nor length.
package secretcmp

import (
	"crypto/sha256"
	"crypto/subtle"
)

// Equal reports whether given is want. Both are hashed first:
// subtle.ConstantTimeCompare returns at once on a length mismatch, which
// would tell a caller timing it how long the secret is. An empty want
// matches nothing.
func Equal(given, want string) bool {
	if want == "" {
		return false
	}
	g, w := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}
