package odometer

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/cockroachdb/apd/v3"
)

// Limits of a single event value. Sums and counts are not limited: they are
// computed with unbounded precision.
const (
	// MaxValueIntegerDigits is the most digits a value may have before its
	// decimal point: |value| < 10^21.
	MaxValueIntegerDigits = 21
	// MaxValueFractionDigits is the most significant digits a value may have
	// after its decimal point. It is also the scale AVG results round to.
	MaxValueFractionDigits = 18
)

// exact adds and compares without ever rounding (precision 0 disables
// rounding in apd); quotient divides with enough digits for any quotient of
// values within the limits and then rounds half-even to the value scale.
var (
	exact    = apd.BaseContext
	quotient = apd.Context{
		Precision:   80,
		MaxExponent: apd.MaxExponent,
		MinExponent: apd.MinExponent,
		Traps:       apd.DefaultTraps,
		Rounding:    apd.RoundHalfEven,
	}
)

// Decimal is an exact decimal number. The zero value is 0. Decimals are
// immutable: every operation returns a new value.
type Decimal struct {
	d apd.Decimal
}

// NewDecimal returns coeff × 10^exp.
func NewDecimal(coeff int64, exp int32) Decimal {
	var x Decimal
	x.d.SetFinite(coeff, exp)
	return x
}

// DecimalFromInt returns n as a Decimal.
func DecimalFromInt(n int64) Decimal {
	var x Decimal
	x.d.SetInt64(n)
	return x
}

// ParseDecimal parses decimal text such as "12", "-0.25" or "1e3" without
// any limit other than being finite. Use ParseValue for event values.
func ParseDecimal(s string) (Decimal, error) {
	var x Decimal
	if s == "" || strings.TrimSpace(s) != s {
		return x, fmt.Errorf("%q is not a decimal number", s)
	}
	if _, _, err := x.d.SetString(s); err != nil {
		return Decimal{}, fmt.Errorf("%q is not a decimal number", s)
	}
	if x.d.Form != apd.Finite {
		return Decimal{}, fmt.Errorf("%q is not a finite decimal number", s)
	}
	return x, nil
}

// MustDecimal is ParseDecimal for constants in tests and examples; it panics
// on bad input.
func MustDecimal(s string) Decimal {
	x, err := ParseDecimal(s)
	if err != nil {
		panic(err)
	}
	return x
}

// ParseValue parses an event value: decimal text within the value limits
// (|v| < 10^21, at most 18 significant fraction digits).
func ParseValue(s string) (Decimal, error) {
	x, err := ParseDecimal(s)
	if err != nil {
		return x, err
	}
	if err := x.checkValueRange(); err != nil {
		return Decimal{}, fmt.Errorf("%s: %w", s, err)
	}
	return x, nil
}

// parsePlainValue parses the common form of event values without going
// through text or big integers: an optional '-' and at most 18 digits, with
// an optional '.' between two of them. Such a value is within the value
// limits and fits an int64 coefficient. The result is exactly what
// ParseValue returns (FuzzParsePlainValue checks this); ok is false for
// every other text, which ParseValue then reads or refuses.
func parsePlainValue(b []byte) (x Decimal, ok bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return Decimal{}, false
	}
	var coeff uint64
	point := -1
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			coeff = coeff*10 + uint64(c-'0')
		case c == '.' && point < 0 && i > 0 && i < len(b)-1:
			point = i
		default:
			return Decimal{}, false
		}
	}
	digits := len(b)
	if point >= 0 {
		digits--
		x.d.Exponent = -int32(len(b) - point - 1)
	}
	if digits > 18 {
		return Decimal{}, false
	}
	x.d.Coeff.SetUint64(coeff)
	x.d.Negative = neg // as apd does: "-0" is a negative zero
	return x, true
}

func (x Decimal) checkValueRange() error {
	if x.d.IsZero() {
		return nil
	}
	var r apd.Decimal
	r.Reduce(&x.d) // drop trailing zeros so "1.50000000000000000000" passes
	if r.Exponent < -MaxValueFractionDigits {
		return fmt.Errorf("more than %d digits after the decimal point", MaxValueFractionDigits)
	}
	// Number of integer digits = digits + exponent.
	if int64(r.NumDigits())+int64(r.Exponent) > MaxValueIntegerDigits {
		return fmt.Errorf("out of range: magnitude must be below 10^%d", MaxValueIntegerDigits)
	}
	return nil
}

// Add returns x + y, exactly.
func (x Decimal) Add(y Decimal) Decimal {
	var z Decimal
	if _, err := exact.Add(&z.d, &x.d, &y.d); err != nil {
		// Only possible past apd's exponent limits (±10^9 digits), which
		// values within the value limits cannot reach.
		panic(fmt.Sprintf("decimal add %s + %s: %v", x, y, err))
	}
	return z
}

// Sub returns x - y, exactly.
func (x Decimal) Sub(y Decimal) Decimal {
	var z Decimal
	if _, err := exact.Sub(&z.d, &x.d, &y.d); err != nil {
		panic(fmt.Sprintf("decimal sub %s - %s: %v", x, y, err))
	}
	return z
}

// Mul returns x × y, exactly.
func (x Decimal) Mul(y Decimal) Decimal {
	var z Decimal
	if _, err := exact.Mul(&z.d, &x.d, &y.d); err != nil {
		panic(fmt.Sprintf("decimal mul %s × %s: %v", x, y, err))
	}
	return z
}

// QuoRound returns x / y rounded half-even to 18 fraction digits, the scale
// of event values. It panics if y is zero.
func (x Decimal) QuoRound(y Decimal) Decimal {
	var z Decimal
	if _, err := quotient.Quo(&z.d, &x.d, &y.d); err != nil {
		panic(fmt.Sprintf("decimal quo %s / %s: %v", x, y, err))
	}
	if _, err := quotient.Quantize(&z.d, &z.d, -MaxValueFractionDigits); err != nil {
		panic(fmt.Sprintf("decimal quantize %s: %v", z, err))
	}
	return z
}

// integer divides with room for the integer part of any quotient of
// sums within reach (apd refuses a quotient with more digits).
var integer = apd.Context{
	Precision:   1000,
	MaxExponent: apd.MaxExponent,
	MinExponent: apd.MinExponent,
	Traps:       apd.DefaultTraps,
}

// FloorDiv returns the greatest integer q with q × y ≤ x (for y > 0), and
// the remainder x − q × y, both exact. It panics if y is not positive.
func (x Decimal) FloorDiv(y Decimal) (q, rem Decimal) {
	if y.Sign() <= 0 {
		panic(fmt.Sprintf("decimal floor division by %s", y))
	}
	if _, err := integer.QuoInteger(&q.d, &x.d, &y.d); err != nil {
		panic(fmt.Sprintf("decimal quo integer %s / %s: %v", x, y, err))
	}
	rem = x.Sub(q.Mul(y))
	if rem.Sign() < 0 { // QuoInteger truncates toward zero
		q = q.Sub(DecimalFromInt(1))
		rem = rem.Add(y)
	}
	return q, rem
}

// Int64 returns x as an int64 if it is an integer that fits.
func (x Decimal) Int64() (int64, bool) {
	n, err := x.d.Int64()
	return n, err == nil
}

// Parts returns x as coeff × 10^exp, when the coefficient fits an int64,
// for compact binary encodings; NewDecimal(coeff, exp) is x again.
func (x Decimal) Parts() (coeff int64, exp int32, ok bool) {
	if x.d.Form != apd.Finite || !x.d.Coeff.IsInt64() {
		return 0, 0, false
	}
	c := x.d.Coeff.Int64()
	if x.d.Negative {
		c = -c
	}
	return c, x.d.Exponent, true
}

// Cmp returns -1, 0 or +1 as x is less than, equal to or greater than y.
func (x Decimal) Cmp(y Decimal) int { return x.d.Cmp(&y.d) }

// Sign returns -1, 0 or +1.
func (x Decimal) Sign() int { return x.d.Sign() }

// IsZero reports whether x is 0.
func (x Decimal) IsZero() bool { return x.d.IsZero() }

// String returns x in plain decimal notation without exponent and without
// trailing fraction zeros, e.g. "100000", "0.3", "-2.5".
func (x Decimal) String() string {
	if x.d.IsZero() {
		return "0"
	}
	var r apd.Decimal
	r.Reduce(&x.d)
	return r.Text('f')
}

// MarshalJSON writes x as a JSON number with its exact decimal text.
func (x Decimal) MarshalJSON() ([]byte, error) { return []byte(x.String()), nil }

// UnmarshalJSON reads a JSON number or a JSON string holding decimal text.
func (x *Decimal) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) >= 2 && b[0] == '"' {
		b = b[1 : len(b)-1]
	}
	v, err := ParseDecimal(string(b))
	if err != nil {
		return err
	}
	*x = v
	return nil
}

// MarshalText and UnmarshalText let decimals travel in YAML, CSV and query
// strings as plain text.
func (x Decimal) MarshalText() ([]byte, error) { return []byte(x.String()), nil }

// UnmarshalText parses decimal text.
func (x *Decimal) UnmarshalText(b []byte) error {
	v, err := ParseDecimal(string(b))
	if err != nil {
		return err
	}
	*x = v
	return nil
}
