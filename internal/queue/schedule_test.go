package queue

import (
	"testing"
	"time"
)

func TestRetryDelay(t *testing.T) {
	for _, tc := range []struct{ age, want time.Duration }{
		{0, 2 * time.Minute},
		{14 * time.Minute, 2 * time.Minute},
		{15 * time.Minute, 10 * time.Minute},
		{59 * time.Minute, 10 * time.Minute},
		{time.Hour, 30 * time.Minute},
		{4 * time.Hour, time.Hour},
		{23 * time.Hour, time.Hour},
		{24 * time.Hour, 2 * time.Hour},
		{5 * 24 * time.Hour, 2 * time.Hour},
	} {
		if got := retryDelay(tc.age); got != tc.want {
			t.Errorf("retryDelay(%v) = %v, want %v", tc.age, got, tc.want)
		}
	}
	// Delays never shrink as a message ages.
	prev := time.Duration(0)
	for age := time.Duration(0); age < 6*24*time.Hour; age += time.Minute {
		if d := retryDelay(age); d < prev {
			t.Fatalf("delay shrinks at age %v: %v < %v", age, d, prev)
		} else {
			prev = d
		}
	}
}

func TestNextAttempt(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := created.Add(time.Hour)
	expiry := 5 * 24 * time.Hour
	if got := nextAttempt(now, created, expiry, 0); got != now.Add(30*time.Minute) {
		t.Errorf("no jitter: %v", got)
	}
	if got := nextAttempt(now, created, expiry, 0.999); got.Sub(now) < 30*time.Minute || got.Sub(now) >= 36*time.Minute {
		t.Errorf("full jitter: %v after now", got.Sub(now))
	}
	// Close to expiry, the next attempt is the expiry itself, so the bounce is not late.
	late := created.Add(expiry - 10*time.Minute)
	if got := nextAttempt(late, created, expiry, 0.5); !got.Equal(created.Add(expiry)) {
		t.Errorf("near expiry: %v, want %v", got, created.Add(expiry))
	}
}
