package odometer_test

import (
	"testing"

	"github.com/odometerhq/odometer"
)

func TestCSVText(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`=HYPERLINK("http://x","y")`: `'=HYPERLINK("http://x","y")`,
		"+1":                         "'+1",
		"-cmd":                       "'-cmd",
		"-5":                         "'-5", // a text cell that looks like a number is still text
		"@SUM(A1)":                   "'@SUM(A1)",
		"\tx":                        "'\tx",
		"\rx":                        "'\rx",
		"'=already":                  "'=already",
		"acme":                       "acme",
		"a=b":                        "a=b",
		" =x":                        " =x",
		"":                           "",
		"5":                          "5",
	} {
		if got := odometer.CSVText(in); got != want {
			t.Errorf("CSVText(%q) = %q, want %q", in, got, want)
		}
		if got := odometer.CSVText(odometer.CSVText(in)); got != want {
			t.Errorf("CSVText(CSVText(%q)) = %q, want %q", in, got, want)
		}
	}
}
