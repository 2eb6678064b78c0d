package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseDuration parses Go durations ("90s", "10m") and also days ("7d"), which time.ParseDuration lacks.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a duration like 10m or 7d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration like 10m or 7d", s)
	}
	return d, nil
}

// MustDuration returns a duration Validate has already checked.
func MustDuration(s string) time.Duration {
	d, _ := ParseDuration(s)
	return d
}
