package export

import (
	"fmt"
	"time"
)

// Time window of AWS Marketplace's BatchMeterUsage: a record's timestamp
// (its hour's start) may lie at most DefaultWindow in the past, which a
// seller may have raised up to MaxWindow; and usage of a month can be
// reported only until MonthEndCutoff past the first of the next month
// (UTC).
const (
	DefaultWindow  = 6 * time.Hour
	MaxWindow      = 24 * time.Hour
	MonthEndCutoff = 6 * time.Hour
)

// CheckWindow validates a configured window.
func CheckWindow(w time.Duration) error {
	if w <= 0 || w > MaxWindow {
		return fmt.Errorf("window must be above 0 and at most %s; got %s", MaxWindow, w)
	}
	return nil
}

// Deadline returns the last moment a record for the UTC hour starting at
// hour can be sent with window w: hour + w, but no later than 06:00 UTC on
// the first of the next month.
func Deadline(hour time.Time, w time.Duration) time.Time {
	hour = hour.UTC()
	d := hour.Add(w)
	y, m, _ := hour.Date()
	cutoff := time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC).Add(MonthEndCutoff)
	if cutoff.Before(d) {
		return cutoff
	}
	return d
}

// Expired reports whether a record for the hour starting at hour may no
// longer be sent at now: such a record is marked expired, never sent.
func Expired(hour, now time.Time, w time.Duration) bool {
	return now.After(Deadline(hour, w))
}
