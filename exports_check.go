package odometer

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// What the stores of export records check, how they encode their JSON
// columns, and the errors they word alike: every store must refuse the same
// input and keep the same JSON. Also the rules of a customer mapping's From
// (CheckExportCustomerFrom), which the API and the config file share.

// maxCarryFractionDigits bounds a carry's fraction: usage (at most 18
// fraction digits) × Multiply (at most 18) less whole multiples of Divide
// has at most 36.
const maxCarryFractionDigits = 2 * MaxValueFractionDigits

// checkExportValue refuses a decimal outside the limits of odometer values
// (|v| < 10^21, at most 18 fraction digits), as Grant.CheckStorable does.
func checkExportValue(field string, d Decimal) error {
	if _, err := ParseValue(d.String()); err != nil {
		return FieldErrorf(field, "%v", err)
	}
	return nil
}

// checkExportCarry refuses a carry with 10^21 or more in magnitude or more than
// maxCarryFractionDigits fraction digits.
func checkExportCarry(field string, d Decimal) error {
	s := d.String() // plain, without trailing fraction zeros
	whole, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	if whole == "0" {
		whole = ""
	}
	switch {
	case len(whole) > MaxValueIntegerDigits:
		return FieldErrorf(field, "%s: out of range: magnitude must be below 10^%d", s, MaxValueIntegerDigits)
	case len(frac) > maxCarryFractionDigits:
		return FieldErrorf(field, "%s: more than %d digits after the decimal point", s, maxCarryFractionDigits)
	}
	return nil
}

// CheckExportStatus refuses a status that odometer does not define.
func CheckExportStatus(field string, s ExportStatus) error {
	switch s {
	case ExportPending, ExportAccepted, ExportDuplicate, ExportNotSubscribed,
		ExportRejected, ExportExpired, ExportEmpty:
		return nil
	}
	return FieldErrorf(field, "unknown export status %q", s)
}

// CheckStorable refuses a freeze that no store keeps as given: an hour that
// is not a whole UTC hour, a record of another destination, of a later hour
// or of an hour that is not whole (records of earlier hours are the empty
// ones that keep what late usage accounted for an hour that had no record),
// an unknown status, and decimals beyond the limits (carries: checkExportCarry;
// the rest: checkExportValue).
func (f *ExportFreeze) CheckStorable() error {
	if !f.Hour.Equal(f.Hour.Truncate(time.Hour)) {
		return FieldErrorf("hour", "%s is not the start of an hour", f.Hour.UTC().Format(time.RFC3339Nano))
	}
	for i, r := range f.Records {
		field := func(name string) string { return fmt.Sprintf("records[%d].%s", i, name) }
		switch {
		case r.Namespace != f.Namespace:
			return FieldErrorf(field("namespace"), "%q is not the freeze's %q", r.Namespace, f.Namespace)
		case r.Destination != f.Destination:
			return FieldErrorf(field("destination"), "%q is not the freeze's %q", r.Destination, f.Destination)
		case r.Hour.After(f.Hour) || !r.Hour.Equal(r.Hour.Truncate(time.Hour)):
			return FieldErrorf(field("hour"), "%s is not a whole hour at or before the frozen hour %s",
				r.Hour.UTC().Format(time.RFC3339Nano), f.Hour.UTC().Format(time.RFC3339))
		}
		if err := CheckExportStatus(field("status"), r.Status); err != nil {
			return err
		}
		for _, v := range []struct {
			name string
			d    Decimal
		}{{"usage", r.Usage}, {"accounted", r.Accounted}, {"late", r.Late}} {
			if err := checkExportValue(field(v.name), v.d); err != nil {
				return err
			}
		}
		for j, l := range r.LateHours {
			if err := checkExportValue(field(fmt.Sprintf("lateHours[%d].usage", j)), l.Usage); err != nil {
				return err
			}
		}
		if err := checkExportCarry(field("carry"), r.Carry); err != nil {
			return err
		}
	}
	for i, a := range f.Accounted {
		if err := checkExportValue(fmt.Sprintf("accounted[%d].accounted", i), a.Accounted); err != nil {
			return err
		}
	}
	for i, a := range f.Accounts {
		if err := checkExportCarry(fmt.Sprintf("accounts[%d].carry", i), a.Carry); err != nil {
			return err
		}
	}
	return nil
}

// CheckExportCustomerFrom checks c.From, the first hour exported for a
// customer mapping of destination d, at now; prev is the subject's mapping
// that c replaces, nil for a new one. A zero From is accepted: the mapping
// starts in the hour it is created. From must be a whole UTC hour. A From
// that keeps the first hour as it was (c.FirstHour() equals
// prev.FirstHour()) is accepted as it is, so that a mapping read back can be
// sent again however much time has passed. Any other From must be:
//   - no later than the current hour (the UTC hour now falls in);
//   - no earlier than d.StartHour: nothing before it is ever exported;
//   - no earlier than the current hour − d.LateHorizon. The exporter sends
//     the usage of the hours from From that are frozen already as late
//     usage of the first hour it freezes for the mapping, and it looks for
//     late usage only LateHorizon back: earlier hours would silently never
//     be exported.
//
// It returns an EINVALID *Error naming the field "from", or nil.
func CheckExportCustomerFrom(c, prev *ExportCustomer, d *ExportDestination, now time.Time) error {
	if c.From.IsZero() {
		return nil
	}
	from := c.From.UTC()
	if !from.Truncate(time.Hour).Equal(from) {
		return FieldErrorf("from", "must be a whole UTC hour, such as %s; got %s",
			from.Truncate(time.Hour).Format(time.RFC3339), c.From.Format(time.RFC3339Nano))
	}
	if prev != nil && from.Equal(prev.FirstHour()) {
		return nil
	}
	current := now.UTC().Truncate(time.Hour)
	oldest := current.Add(-d.LateHorizon)
	switch {
	case from.After(current):
		return FieldErrorf("from", "%s is after the current hour %s: it must be an hour that has begun",
			from.Format(time.RFC3339), current.Format(time.RFC3339))
	case from.Before(d.StartHour):
		return FieldErrorf("from", "%s is before the destination's startHour %s, before which nothing is exported",
			from.Format(time.RFC3339), d.StartHour.UTC().Format(time.RFC3339))
	case from.Before(oldest):
		return FieldErrorf("from", "%s is more than the destination's lateHorizon (%s) before the current hour %s: "+
			"the usage of hours already frozen is sent as late usage, which the exporter looks for only lateHorizon back, "+
			"so the earliest hours would never be exported; give %s or later, or raise lateHorizon",
			from.Format(time.RFC3339), FormatDuration(d.LateHorizon), current.Format(time.RFC3339),
			oldest.Truncate(time.Hour).Add(hourIfPartial(oldest)).Format(time.RFC3339))
	}
	return nil
}

// hourIfPartial is an hour if t is not a whole hour, else 0: what rounds a
// bound up to the next whole hour.
func hourIfPartial(t time.Time) time.Duration {
	if t.Truncate(time.Hour).Equal(t) {
		return 0
	}
	return time.Hour
}

// FormatDuration writes d as Go does without its zero tails: "15m", "6h",
// "1h30m". The API and the error messages write export durations with it.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// exportDimensionJSON is an ExportDimension as stored: named fields that do not
// follow the Go names, and decimals as strings, exact.
type exportDimensionJSON struct {
	Dimension string            `json:"dimension"`
	MeterSlug string            `json:"meterSlug"`
	GroupBy   map[string]string `json:"groupBy"` // null for nil
	Multiply  string            `json:"multiply"`
	Divide    string            `json:"divide"`
	Rounding  string            `json:"rounding"`
}

// MarshalExportDimensions encodes dims as a JSON array, or nil for nil dims.
// EINVALID if a Multiply or Divide is beyond the limits of values.
func MarshalExportDimensions(dims []ExportDimension) ([]byte, error) {
	if dims == nil {
		return nil, nil
	}
	js := make([]exportDimensionJSON, len(dims))
	for i, d := range dims {
		if err := checkExportValue(fmt.Sprintf("dimensions[%d].multiply", i), d.Multiply); err != nil {
			return nil, err
		}
		if err := checkExportValue(fmt.Sprintf("dimensions[%d].divide", i), d.Divide); err != nil {
			return nil, err
		}
		js[i] = exportDimensionJSON{Dimension: d.Dimension, MeterSlug: d.MeterSlug, GroupBy: d.GroupBy,
			Multiply: d.Multiply.String(), Divide: d.Divide.String(), Rounding: d.Rounding}
	}
	return json.Marshal(js)
}

// UnmarshalExportDimensions decodes what MarshalExportDimensions encoded.
func UnmarshalExportDimensions(b []byte) ([]ExportDimension, error) {
	var js []exportDimensionJSON
	if err := json.Unmarshal(b, &js); err != nil {
		return nil, err
	}
	dims := make([]ExportDimension, len(js))
	for i, j := range js {
		d := ExportDimension{Dimension: j.Dimension, MeterSlug: j.MeterSlug, GroupBy: j.GroupBy, Rounding: j.Rounding}
		var err error
		if d.Multiply, err = ParseDecimal(j.Multiply); err != nil {
			return nil, fmt.Errorf("dimension %q: multiply: %w", j.Dimension, err)
		}
		if d.Divide, err = ParseDecimal(j.Divide); err != nil {
			return nil, fmt.Errorf("dimension %q: divide: %w", j.Dimension, err)
		}
		dims[i] = d
	}
	return dims, nil
}

// exportLateJSON is an ExportLate as stored, its usage a string.
type exportLateJSON struct {
	Hour  time.Time `json:"hour"`
	Usage string    `json:"usage"`
}

// MarshalExportLate encodes late as a JSON array, or nil for nil late.
func MarshalExportLate(late []ExportLate) ([]byte, error) {
	if late == nil {
		return nil, nil
	}
	js := make([]exportLateJSON, len(late))
	for i, l := range late {
		js[i] = exportLateJSON{Hour: l.Hour.UTC(), Usage: l.Usage.String()}
	}
	return json.Marshal(js)
}

// UnmarshalExportLate decodes what MarshalExportLate encoded.
func UnmarshalExportLate(b []byte) ([]ExportLate, error) {
	var js []exportLateJSON
	if err := json.Unmarshal(b, &js); err != nil {
		return nil, err
	}
	late := make([]ExportLate, len(js))
	for i, j := range js {
		u, err := ParseDecimal(j.Usage)
		if err != nil {
			return nil, fmt.Errorf("hour %s: usage: %w", j.Hour.Format(time.RFC3339), err)
		}
		late[i] = ExportLate{Hour: j.Hour.UTC(), Usage: u}
	}
	return late, nil
}

// ErrExportDestinationNotFound is ENOTFOUND for a destination.
func ErrExportDestinationNotFound(name string) error {
	return Errorf(ENOTFOUND, "export destination %q not found", name)
}

// ErrExportFrozenThrough is the ECONFLICT of a freeze of hour when the
// destination is frozen through frozen: only the hour starting at frozen
// may be frozen next.
func ErrExportFrozenThrough(destination string, frozen, hour time.Time) error {
	return Errorf(ECONFLICT, "export destination %q is frozen through %s: hour %s is not the next to freeze",
		destination, frozen.UTC().Format(time.RFC3339), hour.UTC().Format(time.RFC3339))
}

// ErrExportRecordExists is ECONFLICT for a record frozen already.
func ErrExportRecordExists(subject, dimension string, hour time.Time) error {
	return Errorf(ECONFLICT, "export record (subject %q, dimension %q, hour %s) exists already",
		subject, dimension, hour.UTC().Format(time.RFC3339))
}

// ErrExportRecordNotFound is ENOTFOUND for an outbox record.
func ErrExportRecordNotFound(subject, dimension string, hour time.Time) error {
	return Errorf(ENOTFOUND, "export record (subject %q, dimension %q, hour %s) not found",
		subject, dimension, hour.UTC().Format(time.RFC3339))
}
