package odometer_test

import (
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestWindow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		size       odometer.WindowSize
		zone       string
		at         string
		start, end string
	}{
		{"minute utc", odometer.Minute, "UTC", "2024-03-10T12:34:56.789Z", "2024-03-10T12:34:00Z", "2024-03-10T12:35:00Z"},
		{"hour utc", odometer.Hour, "UTC", "2024-03-10T12:34:56Z", "2024-03-10T12:00:00Z", "2024-03-10T13:00:00Z"},
		{"hour kolkata starts at :30 utc", odometer.Hour, "Asia/Kolkata", "2024-03-10T12:10:00Z", "2024-03-10T11:30:00Z", "2024-03-10T12:30:00Z"},
		{"day kolkata", odometer.Day, "Asia/Kolkata", "2024-03-10T20:00:00Z", "2024-03-10T18:30:00Z", "2024-03-11T18:30:00Z"},
		{"day kolkata before local midnight", odometer.Day, "Asia/Kolkata", "2024-03-10T18:29:59Z", "2024-03-09T18:30:00Z", "2024-03-10T18:30:00Z"},
		{"day new york spring forward is 23h", odometer.Day, "America/New_York", "2024-03-10T12:00:00Z", "2024-03-10T05:00:00Z", "2024-03-11T04:00:00Z"},
		{"day new york fall back is 25h", odometer.Day, "America/New_York", "2024-11-03T12:00:00Z", "2024-11-03T04:00:00Z", "2024-11-04T05:00:00Z"},
		{"hour new york repeated 1am, first", odometer.Hour, "America/New_York", "2024-11-03T05:30:00Z", "2024-11-03T05:00:00Z", "2024-11-03T06:00:00Z"},
		{"hour new york repeated 1am, second", odometer.Hour, "America/New_York", "2024-11-03T06:30:00Z", "2024-11-03T06:00:00Z", "2024-11-03T07:00:00Z"},
		{"month berlin", odometer.Month, "Europe/Berlin", "2024-03-31T22:30:00Z", "2024-03-31T22:00:00Z", "2024-04-30T22:00:00Z"},
		{"month berlin last hour of march", odometer.Month, "Europe/Berlin", "2024-03-31T21:59:59Z", "2024-02-29T23:00:00Z", "2024-03-31T22:00:00Z"},
		{"month utc december", odometer.Month, "UTC", "2024-12-31T23:59:59Z", "2024-12-01T00:00:00Z", "2025-01-01T00:00:00Z"},
		{"day chatham +13:45", odometer.Day, "Pacific/Chatham", "2024-06-01T00:00:00Z", "2024-05-31T11:15:00Z", "2024-06-01T11:15:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start, end := tc.size.Window(ts(tc.at), mustLoc(t, tc.zone))
			if !start.Equal(ts(tc.start)) || !end.Equal(ts(tc.end)) {
				t.Errorf("Window(%s, %s, %s) = [%s, %s), want [%s, %s)", tc.size, tc.zone, tc.at,
					start.Format(time.RFC3339), end.Format(time.RFC3339), tc.start, tc.end)
			}
		})
	}
}

func TestParseWindowSize(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"", "MINUTE", "HOUR", "DAY", "MONTH"} {
		if _, err := odometer.ParseWindowSize(ok); err != nil {
			t.Errorf("ParseWindowSize(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"day", "WEEK", "1h"} {
		if _, err := odometer.ParseWindowSize(bad); err == nil {
			t.Errorf("ParseWindowSize(%q) accepted", bad)
		}
	}
}
