package notify

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"
)

func secretOf(n int) string {
	return secretPrefix + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", n)))
}

// NOTIFY_SECRET's error names which of several secrets is wrong, and a
// single one plainly; keys of 24 to 64 bytes (both ends included) are valid.
func TestParseSecretNamesTheWrongOneAndTakesBothLengthEnds(t *testing.T) {
	_, err := ParseSecret(testSecret + " whsec_!!")
	if err == nil || !strings.HasPrefix(err.Error(), "NOTIFY_SECRET's secret 2 of 2:") {
		t.Errorf("second of two wrong: %v, want it named as secret 2 of 2", err)
	}
	_, err = ParseSecret("whsec_!!")
	if err == nil || !strings.HasPrefix(err.Error(), "NOTIFY_SECRET:") {
		t.Errorf("one wrong: %v, want NOTIFY_SECRET named plainly", err)
	}
	for _, n := range []int{minSecretBytes, maxSecretBytes} {
		if s, err := ParseSecret(secretOf(n)); err != nil || !s.Valid() {
			t.Errorf("a %d-byte key: %v, want valid", n, err)
		}
	}
	for _, n := range []int{minSecretBytes - 1, maxSecretBytes + 1} {
		if _, err := ParseSecret(secretOf(n)); err == nil {
			t.Errorf("a %d-byte key accepted", n)
		}
	}
}

// The webhook-signature header is "v1,<sig>" per key, one space between,
// nothing before the first.
func TestSignatureHeaderFormat(t *testing.T) {
	two, err := ParseSecret(testSecret + " " + secretOf(32))
	if err != nil {
		t.Fatal(err)
	}
	got := two.Sign("msg_1", time.Unix(1700000000, 0), []byte("{}"))
	if parts := strings.Split(got, " "); len(parts) != 2 || !strings.HasPrefix(parts[0], "v1,") || !strings.HasPrefix(parts[1], "v1,") {
		t.Errorf("header %q, want two v1 signatures separated by one space", got)
	}
}

// A notification signed exactly tolerance ago, or ahead, is still
// accepted; one second more is stale.
func TestVerifyToleranceIncludesItsEnds(t *testing.T) {
	sec, err := ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Unix(1700000000, 0)
	h := http.Header{}
	h.Set(HeaderID, "msg_1")
	h.Set(HeaderTimestamp, "1700000000")
	h.Set(HeaderSignature, sec.Sign("msg_1", sent, []byte("{}")))
	const tolerance = 5 * time.Minute
	for _, now := range []time.Time{sent.Add(tolerance), sent.Add(-tolerance)} {
		if err := sec.Verify(h, []byte("{}"), now, tolerance); err != nil {
			t.Errorf("verified %s after sending: %v, want accepted", now.Sub(sent), err)
		}
	}
	for _, now := range []time.Time{sent.Add(tolerance + time.Second), sent.Add(-tolerance - time.Second)} {
		if err := sec.Verify(h, []byte("{}"), now, tolerance); err != ErrStale {
			t.Errorf("verified %s after sending: %v, want ErrStale", now.Sub(sent), err)
		}
	}
}

// `notify` status counts a notification waiting for its retry as
// retrying, not also as pending.
func TestStatsCountRetryingApartFromPending(t *testing.T) {
	ep := newEndpoint(t, 500)
	w := newWorld(t, ep.srv.URL, testSecret)
	w.store(created(1))
	if s := w.deliver(); s.Retrying != 1 {
		t.Fatalf("pass %+v, want one retrying", s)
	}
	w.store(created(2), created(3))
	if st := w.stats(); len(st) != 1 || st[0].Pending != 2 || st[0].Retrying != 1 {
		t.Errorf("stats %+v, want 2 pending and 1 retrying", st)
	}
}

// One pass delivers everything due, over as many claims as it takes; and
// a redrive brings back every dead notification, over as many batches as
// it takes.
func TestOnePassAndOneRedriveTakeAsManyBatchesAsNeeded(t *testing.T) {
	ep := newEndpoint(t, 500)
	w := newWorld(t, ep.srv.URL, testSecret)
	w.n.cfg.MaxAttempts = 1
	const many = redriveBatch + 1 // also more than one claim's DefaultBatchSize
	ns := make([]Notification, many)
	for i := range ns {
		ns[i] = created(int64(i + 1))
	}
	w.store(ns...)
	if s := w.deliver(); s.Dead != many {
		t.Fatalf("pass %+v, want all %d dead in one pass", s, many)
	}
	moved, err := w.n.Redrive(context.Background())
	if err != nil || moved != many {
		t.Fatalf("Redrive = %d, %v; want all %d back", moved, err, many)
	}
	ep.setAnswers(200)
	if s := w.deliver(); s.Delivered != many {
		t.Errorf("pass after redrive %+v, want all %d delivered", s, many)
	}
}
