package queue

import "time"

// retryDelay is how long a message that has waited age waits before its next attempt: often at first (a
// greylisting server asks to come back within minutes), then less and less often, as Postfix and chasquid do.
func retryDelay(age time.Duration) time.Duration {
	switch {
	case age < 15*time.Minute:
		return 2 * time.Minute
	case age < time.Hour:
		return 10 * time.Minute
	case age < 4*time.Hour:
		return 30 * time.Minute
	case age < 24*time.Hour:
		return time.Hour
	default:
		return 2 * time.Hour
	}
}

// nextAttempt adds up to 20% of jitter to the delay, so messages deferred together (say, by a restart or a
// remote outage) do not all come back at the same moment, and never schedules past the expiry.
func nextAttempt(now, created time.Time, expiry time.Duration, jitter float64) time.Time {
	d := retryDelay(now.Sub(created))
	next := now.Add(d + time.Duration(jitter*0.2*float64(d)))
	if end := created.Add(expiry); next.After(end) && end.After(now) {
		return end
	}
	return next
}
