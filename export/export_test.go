package export

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

func dec(s string) odometer.Decimal { return odometer.MustDecimal(s) }

func TestQuantityCarries(t *testing.T) {
	t.Parallel()
	// Seconds into hundredths of an hour: × 1 / 36.
	c := Conversion{Multiply: dec("1"), Divide: dec("36")}
	var carry Carry
	for i, step := range []struct {
		usage string
		q     int64
		carry string
	}{
		{"3600", 100, "0"},
		{"35", 0, "35"},
		{"1", 1, "0"},
		{"71.5", 1, "35.5"},
		{"0.5", 1, "0"},
		{"-10", 0, "-10"}, // a correction: nothing to report, carried
		{"46", 1, "0"},
	} {
		q, next, err := c.Quantity(dec(step.usage), carry)
		if err != nil || q != step.q || next.Cmp(dec(step.carry)) != 0 {
			t.Fatalf("step %d: Quantity(%s, carry %s) = %d, %s, %v; want %d, %s", i, step.usage, carry, q, next, err, step.q, step.carry)
		}
		carry = next
	}

	half := Conversion{Multiply: dec("1"), Divide: dec("36"), Rounding: RoundHalfUp}
	q, next, _ := half.Quantity(dec("18"), Carry{})
	if q != 1 || next.Cmp(dec("-18")) != 0 {
		t.Fatalf("HALF_UP of 18/36 = %d carry %s; want 1 carry -18", q, next)
	}
	q, next, _ = half.Quantity(dec("17"), next)
	if q != 0 || next.Cmp(dec("-1")) != 0 {
		t.Fatalf("HALF_UP of -1/36 = %d carry %s; want 0 carry -1", q, next)
	}
}

// Over any run of hours the reported quantities and the final carry
// account for every unit of usage, exactly, and the carry stays within a
// unit.
func TestQuantityIsExactOverTime(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 5))
	for _, c := range []Conversion{
		{Multiply: dec("1"), Divide: dec("36")},
		{Multiply: dec("1"), Divide: dec("36"), Rounding: RoundHalfUp},
		{Multiply: dec("0.001"), Divide: dec("1")},
		{Multiply: dec("3"), Divide: dec("7"), Rounding: RoundHalfUp},
	} {
		var carry Carry
		var sumUsage, sumQ odometer.Decimal
		for range 2000 {
			u := dec(fmt.Sprintf("%d.%03d", rng.IntN(5000), rng.IntN(1000)))
			q, next, err := c.Quantity(u, carry)
			if err != nil {
				t.Fatal(err)
			}
			sumUsage = sumUsage.Add(u)
			sumQ = sumQ.Add(odometer.DecimalFromInt(q))
			carry = next
			lo, hi := odometer.Decimal{}, c.Divide
			if c.Rounding == RoundHalfUp {
				lo, hi = c.Divide.Mul(dec("-0.5")), c.Divide.Mul(dec("0.5"))
			}
			if carry.Cmp(lo) < 0 || carry.Cmp(hi) >= 0 {
				t.Fatalf("%+v: carry %s outside [%s, %s)", c, carry, lo, hi)
			}
		}
		if lhs, rhs := sumQ.Mul(c.Divide).Add(carry), sumUsage.Mul(c.Multiply); lhs.Cmp(rhs) != 0 {
			t.Fatalf("%+v: Σq×Divide + carry = %s, Σusage×Multiply = %s", c, lhs, rhs)
		}
	}
}

func TestConversionValidate(t *testing.T) {
	t.Parallel()
	if err := (Conversion{Multiply: dec("1"), Divide: dec("36")}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Conversion{Multiply: dec("0"), Divide: dec("-1"), Rounding: "UP"}).Validate(); err == nil {
		t.Fatal("a zero multiplier, a negative divisor and an unknown rounding were accepted")
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		hour     string
		window   time.Duration
		deadline string
	}{
		{"2026-03-10 10:00", DefaultWindow, "2026-03-10 16:00"},
		{"2026-03-31 20:00", DefaultWindow, "2026-04-01 02:00"},
		{"2026-03-31 23:00", DefaultWindow, "2026-04-01 05:00"},
		{"2026-03-31 10:00", MaxWindow, "2026-04-01 06:00"}, // the month-end cut-off
		{"2026-12-31 23:00", MaxWindow, "2027-01-01 06:00"},
		{"2026-04-01 01:00", MaxWindow, "2026-04-02 01:00"}, // a new month's own hours
	} {
		if got := Deadline(at(c.hour), c.window); !got.Equal(at(c.deadline)) {
			t.Errorf("Deadline(%s, %s) = %s, want %s", c.hour, c.window, got, c.deadline)
		}
		d := at(c.deadline)
		if Expired(at(c.hour), d, c.window) || !Expired(at(c.hour), d.Add(time.Second), c.window) {
			t.Errorf("hour %s: expiry not at %s", c.hour, c.deadline)
		}
	}
	for _, w := range []time.Duration{0, -time.Hour, 25 * time.Hour} {
		if CheckWindow(w) == nil {
			t.Errorf("window %s accepted", w)
		}
	}
	if err := CheckWindow(MaxWindow); err != nil {
		t.Error(err)
	}
}
