// Package export holds the rules of reporting usage to billing systems
// that are independent of any store or network: unit conversion with
// carried rounding remainders, and the time window a record may be sent
// in. docs/export-aws.md states them.
package export

import (
	"errors"
	"fmt"

	"github.com/odometerhq/odometer"
)

// Rounding says how a converted quantity becomes a whole number.
type Rounding string

const (
	// RoundDown reports the whole part and carries the fraction.
	RoundDown Rounding = "DOWN"
	// RoundHalfUp reports the nearest whole number (halves up) and carries
	// the difference, which may be negative.
	RoundHalfUp Rounding = "HALF_UP"
)

// Conversion turns usage in a meter's unit into a dimension's whole
// quantities: usage × Multiply / Divide, e.g. seconds into hundredths of an
// hour with Multiply 1 and Divide 36.
type Conversion struct {
	Multiply, Divide odometer.Decimal
	Rounding         Rounding // "" is RoundDown
}

// Validate checks that both factors are positive and the rounding known.
func (c Conversion) Validate() error {
	var errs []error
	if c.Multiply.Sign() <= 0 {
		errs = append(errs, fmt.Errorf("multiply must be positive; got %s", c.Multiply))
	}
	if c.Divide.Sign() <= 0 {
		errs = append(errs, fmt.Errorf("divide must be positive; got %s", c.Divide))
	}
	switch c.Rounding {
	case "", RoundDown, RoundHalfUp:
	default:
		errs = append(errs, fmt.Errorf("rounding must be DOWN or HALF_UP; got %q", c.Rounding))
	}
	return errors.Join(errs...)
}

// Carry is what a conversion has not reported yet, in units of
// 1/Divide of a dimension unit, so that it stays exact. The zero value is
// nothing carried.
type Carry = odometer.Decimal

// Quantity converts one hour's usage, plus what earlier hours carried, into
// the whole quantity to report and the carry for the next hour. Over any
// run of hours, the quantities sum to (Σ usage × Multiply − final carry) /
// Divide exactly, so nothing is lost to rounding. A negative total (usage
// can be negative, e.g. corrections) reports 0 and carries all of it.
func (c Conversion) Quantity(usage odometer.Decimal, carry Carry) (q int64, next Carry, err error) {
	total := carry.Add(usage.Mul(c.Multiply))
	if c.Rounding == RoundHalfUp {
		// floor((total + Divide/2) / Divide), in whole units of 1/Divide.
		half := c.Divide.Mul(odometer.MustDecimal("0.5"))
		whole, _ := total.Add(half).FloorDiv(c.Divide)
		return c.report(whole, total)
	}
	whole, _ := total.FloorDiv(c.Divide)
	return c.report(whole, total)
}

// report returns whole as the quantity unless it is negative, with the
// carry that keeps the total exact.
func (c Conversion) report(whole, total odometer.Decimal) (int64, Carry, error) {
	if whole.Sign() <= 0 {
		return 0, total, nil
	}
	n, ok := whole.Int64()
	if !ok {
		return 0, total, fmt.Errorf("quantity %s does not fit in 64 bits", whole)
	}
	return n, total.Sub(whole.Mul(c.Divide)), nil
}
