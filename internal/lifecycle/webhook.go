package lifecycle

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a webhook delivery.
const (
	// HeaderEventID carries the event's ID, for deduplication: a delivery
	// is at least once, so the same ID may arrive more than once.
	HeaderEventID = "Trustgate-Event-Id"
	// HeaderTimestamp is the Unix time, in seconds, of this attempt.
	HeaderTimestamp = "Trustgate-Timestamp"
	// HeaderSignature is "v1=" and the lower-case hex HMAC-SHA256, under
	// the webhook's secret, of the timestamp, a '.', and the body.
	HeaderSignature = "Trustgate-Signature"
)

// Sign returns the HeaderSignature value of body sent at Unix time ts.
// The timestamp is signed with the body so that a captured delivery cannot
// be replayed later under a fresh timestamp.
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a delivery as a receiver should: the signature header
// must hold a v1 signature of the timestamp and body under secret
// (compared in constant time), and the timestamp must be within tolerance
// of now, which bounds replays.
func Verify(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	tsText, sig := h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if tsText == "" || sig == "" {
		return errors.New("webhook: missing timestamp or signature header")
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return errors.New("webhook: the timestamp is not a Unix time")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return errors.New("webhook: the timestamp is outside the tolerance")
	}
	// Several signatures may be sent while a secret is being rotated.
	want := Sign(secret, ts, body)
	for _, s := range strings.Split(sig, ",") {
		if hmac.Equal([]byte(strings.TrimSpace(s)), []byte(want)) {
			return nil
		}
	}
	return errors.New("webhook: the signature does not match")
}
