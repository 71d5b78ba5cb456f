package notify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks' header names.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// secretPrefix starts every Standard Webhooks secret.
const secretPrefix = "whsec_"

// Secret lengths Standard Webhooks allows (decoded bytes).
const (
	minSecretBytes = 24
	maxSecretBytes = 64
	newSecretBytes = 32
)

// DefaultTolerance is how far a webhook-timestamp may be from the
// receiver's clock (the reference verifier's value): a captured
// notification cannot be replayed later than this.
const DefaultTolerance = 5 * time.Minute

// Secret is a parsed NOTIFY_SECRET: one key, or during a rotation several
// (space-separated, the new one first), each signing every notification so
// that receivers holding either verify. Its String never shows a key.
type Secret struct {
	keys [][]byte
}

// ParseSecret parses NOTIFY_SECRET: "whsec_" followed by the standard
// base64 of 24 to 64 bytes; several such secrets may be given, separated by
// spaces. The error never repeats the secret.
func ParseSecret(s string) (Secret, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return Secret{}, errors.New("NOTIFY_SECRET is not set: `stravahook notify secret` prints a fresh one")
	}
	var sec Secret
	for i, f := range fields {
		which := "NOTIFY_SECRET"
		if len(fields) > 1 {
			which = fmt.Sprintf("NOTIFY_SECRET's secret %d of %d", i+1, len(fields))
		}
		encoded, ok := strings.CutPrefix(f, secretPrefix)
		if !ok {
			return Secret{}, fmt.Errorf("%s does not start with %q: `stravahook notify secret` prints a valid one", which, secretPrefix)
		}
		key, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			return Secret{}, fmt.Errorf("%s: the part after %q is not standard base64: `stravahook notify secret` prints a valid one", which, secretPrefix)
		}
		if len(key) < minSecretBytes || len(key) > maxSecretBytes {
			return Secret{}, fmt.Errorf("%s decodes to %d bytes; Standard Webhooks wants %d to %d", which, len(key), minSecretBytes, maxSecretBytes)
		}
		sec.keys = append(sec.keys, key)
	}
	return sec, nil
}

// NewSecret returns a fresh random secret for NOTIFY_SECRET.
func NewSecret() string {
	key := make([]byte, newSecretBytes)
	_, _ = rand.Read(key) // never fails (crypto/rand's documented promise)
	return secretPrefix + base64.StdEncoding.EncodeToString(key)
}

// Valid reports whether the secret holds a key.
func (s Secret) Valid() bool { return len(s.keys) > 0 }

// String keeps the keys out of logs.
func (s Secret) String() string {
	if !s.Valid() {
		return "notify.Secret(unset)"
	}
	return fmt.Sprintf("notify.Secret(%d key(s), redacted)", len(s.keys))
}

// GoString is String, for %#v.
func (s Secret) GoString() string { return s.String() }

// Sign returns the webhook-signature header value for one delivery:
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>" per key, space-separated.
func (s Secret) Sign(id string, timestamp time.Time, body []byte) string {
	var b strings.Builder
	for i, key := range s.keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(mac(key, id, timestamp.Unix(), body)))
	}
	return b.String()
}

func mac(key []byte, id string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, unix, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verification failures.
var (
	ErrMissingHeaders = errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	ErrStale          = errors.New("webhook-timestamp too far from now (stale or replayed)")
	ErrBadSignature   = errors.New("no webhook-signature matches")
)

// Verify checks a received notification: the headers are present, the
// timestamp is within tolerance of now, and one of the v1 signatures is
// made with one of s's keys over exactly this body.
func (s Secret) Verify(h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return ErrMissingHeaders
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not unix seconds", ts)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	for _, sig := range strings.Fields(sigs) {
		version, encoded, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			continue
		}
		for _, key := range s.keys {
			if hmac.Equal(got, mac(key, id, unix, body)) {
				return nil
			}
		}
	}
	return ErrBadSignature
}
