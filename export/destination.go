package export

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/odometerhq/odometer"
)

// Defaults and limits of a destination's settings (docs/export-aws.md,
// "Configuring a destination").
const (
	// DefaultDelay is how long after an hour ends it is frozen.
	DefaultDelay = 15 * time.Minute
	// MaxDelay is the longest delay; a longer one would leave too little of
	// the window to send in.
	MaxDelay = 6 * time.Hour
	// DefaultLateHorizon is how far back late usage is looked for.
	DefaultLateHorizon = 24 * time.Hour
	// MinLateHorizon and MaxLateHorizon bound the late horizon.
	MinLateHorizon = time.Hour
	MaxLateHorizon = 31 * 24 * time.Hour
	// MaxNameLength bounds a product code and a dimension name, as AWS does.
	MaxNameLength = 255
)

// Normalize fills the defaults of d's unset (zero) settings and validates
// it. It returns an EINVALID *odometer.Error naming every bad field as the
// API names it ("dimensions[1].divide"), or nil.
//
// Defaults: multiply and divide 1, rounding DOWN, delay DefaultDelay,
// window DefaultWindow, late horizon DefaultLateHorizon, and start hour the
// UTC hour that contains now. A zero delay therefore means the default;
// a delay of 1s freezes an hour almost as soon as it ends.
//
// Normalize checks d alone; CheckMeters checks its dimensions against the
// namespace's meters, and Accounts.Authorize whether the namespace may use
// its account and product code.
func Normalize(d *odometer.ExportDestination, now time.Time) error {
	var fields []odometer.FieldError
	bad := func(field, format string, args ...any) {
		fields = append(fields, odometer.FieldError{Index: -1, Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if reason := slugProblem(d.Name); reason != "" {
		bad("name", "%s", reason)
	}
	switch {
	case d.ProductCode == "":
		bad("productCode", "required: the AWS Marketplace product code")
	case len(d.ProductCode) > MaxNameLength:
		bad("productCode", "longer than %d characters", MaxNameLength)
	}
	if err := CheckRegion(d.Region); err != nil {
		bad("region", "%v", err)
	}
	if d.Account != "" {
		if reason := slugProblem(d.Account); reason != "" {
			bad("account", "%s", reason)
		}
	}

	if len(d.Dimensions) == 0 {
		bad("dimensions", "list at least one dimension")
	}
	names := map[string]int{}
	for i := range d.Dimensions {
		dim := &d.Dimensions[i]
		field := fmt.Sprintf("dimensions[%d].", i)
		switch first, dup := names[dim.Dimension]; {
		case dim.Dimension == "":
			bad(field+"dimension", "required: the AWS dimension name")
		case len(dim.Dimension) > MaxNameLength:
			bad(field+"dimension", "longer than %d characters", MaxNameLength)
		case dup:
			bad(field+"dimension", "%q is dimensions[%d] already", dim.Dimension, first)
		default:
			names[dim.Dimension] = i
		}
		if dim.MeterSlug == "" {
			bad(field+"meterSlug", "required: the SUM or COUNT meter to report")
		}
		for _, k := range slices.Sorted(maps.Keys(dim.GroupBy)) {
			if k == "" {
				bad(field+"groupBy", "a key is empty")
			}
		}
		if dim.Multiply.IsZero() {
			dim.Multiply = odometer.DecimalFromInt(1)
		}
		if dim.Divide.IsZero() {
			dim.Divide = odometer.DecimalFromInt(1)
		}
		if dim.Rounding == "" {
			dim.Rounding = string(RoundDown)
		}
		// Conversion.Validate states the rules; checking one factor at a
		// time names the field.
		one := odometer.DecimalFromInt(1)
		for _, f := range []struct {
			name string
			v    odometer.Decimal
			c    Conversion
		}{
			{"multiply", dim.Multiply, Conversion{Multiply: dim.Multiply, Divide: one}},
			{"divide", dim.Divide, Conversion{Multiply: one, Divide: dim.Divide}},
			{"rounding", odometer.Decimal{}, Conversion{Multiply: one, Divide: one, Rounding: Rounding(dim.Rounding)}},
		} {
			if err := f.c.Validate(); err != nil {
				bad(field+f.name, "%s", strings.TrimPrefix(err.Error(), f.name+" "))
			} else if f.name != "rounding" {
				if _, err := odometer.ParseValue(f.v.String()); err != nil {
					bad(field+f.name, "must be below 10^21 with at most 18 fraction digits; got %s", f.v)
				}
			}
		}
	}

	if d.Delay == 0 {
		d.Delay = DefaultDelay
	}
	if d.Window == 0 {
		d.Window = DefaultWindow
	}
	if d.LateHorizon == 0 {
		d.LateHorizon = DefaultLateHorizon
	}
	windowOK := CheckWindow(d.Window) == nil
	switch {
	case d.Delay < 0 || d.Delay > MaxDelay:
		bad("delay", "must be above 0 and at most %s; got %s", MaxDelay, d.Delay)
	case windowOK && time.Hour+d.Delay >= d.Window:
		// An hour is frozen at its end plus the delay; by then its record
		// must still be inside the window, or it can only expire.
		bad("delay", "the hour plus the delay (%s) must be shorter than the window (%s), or every record expires unsent", time.Hour+d.Delay, d.Window)
	}
	if err := CheckWindow(d.Window); err != nil {
		bad("window", "%s", strings.TrimPrefix(err.Error(), "window "))
	}
	if d.LateHorizon < MinLateHorizon || d.LateHorizon > MaxLateHorizon {
		bad("lateHorizon", "must be from %s to %s; got %s", MinLateHorizon, MaxLateHorizon, d.LateHorizon)
	}
	if d.StartHour.IsZero() {
		d.StartHour = now.UTC().Truncate(time.Hour)
	}
	d.StartHour = d.StartHour.UTC()
	if !d.StartHour.Truncate(time.Hour).Equal(d.StartHour) {
		bad("startHour", "must be a whole UTC hour; got %s", d.StartHour.Format(time.RFC3339Nano))
	}
	if len(fields) > 0 {
		return &odometer.Error{Code: odometer.EINVALID, Message: "invalid export destination", Fields: fields}
	}
	return nil
}

// slugProblem returns why name is not a slug, or "". The rule is the meter
// slugs' (odometer.Meter.Validate); asking a meter keeps them the same.
func slugProblem(name string) string {
	m := odometer.Meter{Slug: name, EventType: "e", Aggregation: odometer.Count}
	for _, f := range odometer.ErrorFields(m.Validate()) {
		if f.Field == "slug" {
			return f.Reason
		}
	}
	return ""
}

// CheckMeters checks every dimension of d against the meters of its
// namespace: the meter must exist and be SUM or COUNT, and each group-by key
// of the dimension must be one of the meter's. A dimension naming a meter
// by id gets its slug. It returns an EINVALID *odometer.Error naming the
// fields ("dimensions[0].meterSlug", "dimensions[0].groupBy.model"), or
// the store's error.
func CheckMeters(ctx context.Context, d *odometer.ExportDestination, meters odometer.MeterStore) error {
	var fields []odometer.FieldError
	bad := func(field, format string, args ...any) {
		fields = append(fields, odometer.FieldError{Index: -1, Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	for i := range d.Dimensions {
		dim := &d.Dimensions[i]
		field := fmt.Sprintf("dimensions[%d].", i)
		if dim.MeterSlug == "" {
			continue // Normalize reports it
		}
		m, err := meters.FindMeter(ctx, d.Namespace, dim.MeterSlug)
		if odometer.ErrorCode(err) == odometer.ENOTFOUND {
			bad(field+"meterSlug", "no meter %q", dim.MeterSlug)
			continue
		}
		if err != nil {
			return fmt.Errorf("find meter %q: %w", dim.MeterSlug, err)
		}
		dim.MeterSlug = m.Slug
		if m.Aggregation != odometer.Sum && m.Aggregation != odometer.Count {
			bad(field+"meterSlug", "meter %q is %s; only SUM and COUNT meters can be exported", m.Slug, m.Aggregation)
		}
		for _, k := range slices.Sorted(maps.Keys(dim.GroupBy)) {
			if _, ok := m.GroupBy[k]; !ok && k != "" {
				keys := slices.Sorted(maps.Keys(m.GroupBy))
				if len(keys) == 0 {
					bad(field+"groupBy."+k, "meter %q has no group-by keys", m.Slug)
				} else {
					bad(field+"groupBy."+k, "meter %q has no group-by key %q (its keys: %s)", m.Slug, k, strings.Join(keys, ", "))
				}
			}
		}
	}
	if len(fields) > 0 {
		return &odometer.Error{Code: odometer.EINVALID, Message: "invalid export destination", Fields: fields}
	}
	return nil
}

var awsAccountRE = regexp.MustCompile(`^[0-9]{12}$`)

// CheckCustomer validates a customer mapping: a subject, and either a
// CustomerID alone or an AWSAccountID (12 digits) with a LicenseArn. It
// returns an EINVALID *odometer.Error naming every bad field, or nil.
func CheckCustomer(c *odometer.ExportCustomer) error {
	var fields []odometer.FieldError
	bad := func(field, format string, args ...any) {
		fields = append(fields, odometer.FieldError{Index: -1, Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if c.Subject == "" {
		bad("subject", "required")
	}
	switch {
	case c.CustomerID == "" && c.AWSAccountID == "":
		bad("customerId", "required: give customerId, or awsAccountId with licenseArn")
	case c.CustomerID != "" && c.AWSAccountID != "":
		bad("awsAccountId", "give customerId or awsAccountId, not both")
	case c.CustomerID != "":
		if c.LicenseArn != "" {
			bad("licenseArn", "goes with awsAccountId only, not with customerId")
		}
	default:
		if !awsAccountRE.MatchString(c.AWSAccountID) {
			bad("awsAccountId", "must be 12 digits; got %q", c.AWSAccountID)
		}
		if c.LicenseArn == "" {
			bad("licenseArn", "required with awsAccountId")
		}
	}
	if len(fields) > 0 {
		return &odometer.Error{Code: odometer.EINVALID, Message: "invalid export customer", Fields: fields}
	}
	return nil
}

// CheckCustomerUnique returns an ECONFLICT error if another subject among
// existing is mapped to the AWS customer of c. AWS keeps one record per
// customer, dimension and hour, so two subjects sending to one customer
// would have the second's records answered as duplicates and never metered.
func CheckCustomerUnique(c *odometer.ExportCustomer, existing []*odometer.ExportCustomer) error {
	i := slices.IndexFunc(existing, func(o *odometer.ExportCustomer) bool {
		return o.Subject != c.Subject && o.CustomerID == c.CustomerID &&
			o.AWSAccountID == c.AWSAccountID && o.LicenseArn == c.LicenseArn
	})
	if i < 0 {
		return nil
	}
	return odometer.Errorf(odometer.ECONFLICT, "%s is mapped to subject %q already; "+
		"AWS takes one record per customer, dimension and hour, so a customer maps to one subject (delete that mapping first)",
		customerText(c), existing[i].Subject)
}

func customerText(c *odometer.ExportCustomer) string {
	if c.CustomerID != "" {
		return fmt.Sprintf("customer %q", c.CustomerID)
	}
	return fmt.Sprintf("AWS account %s with license %q", c.AWSAccountID, c.LicenseArn)
}

// CheckMeterChange refuses a change of meter m that would break an export
// dimension reading it: deleting the meter, or a groupBy (newGroupBy) that
// drops a key a dimension filters on. ECONFLICT names the destinations and
// dimensions. Like the features' check, it reads the destinations at the
// time of the change, not in one transaction with it.
func CheckMeterChange(ctx context.Context, exports odometer.ExportStore, ns string, m *odometer.Meter, newGroupBy map[string]string, deleting bool) error {
	ds, err := exports.ListExportDestinations(ctx, ns)
	if err != nil {
		return fmt.Errorf("check the export destinations of meter %q: %w", m.Slug, err)
	}
	var users, broken []string
	for _, d := range ds {
		for _, dim := range d.Dimensions {
			if dim.MeterSlug != m.Slug {
				continue
			}
			users = append(users, fmt.Sprintf("%s/%s", d.Name, dim.Dimension))
			for _, k := range slices.Sorted(maps.Keys(dim.GroupBy)) {
				if _, ok := newGroupBy[k]; !ok {
					broken = append(broken, fmt.Sprintf("%s/%s (filters on %q)", d.Name, dim.Dimension, k))
					break
				}
			}
		}
	}
	switch {
	case deleting && len(users) > 0:
		return odometer.Errorf(odometer.ECONFLICT, "meter %q is exported as %s (destination/dimension); remove those dimensions first",
			m.Slug, strings.Join(users, ", "))
	case !deleting && len(broken) > 0:
		return odometer.Errorf(odometer.ECONFLICT, "meter %q: the new groupBy drops a key that export dimensions filter on: %s",
			m.Slug, strings.Join(broken, ", "))
	}
	return nil
}
