package exporter_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/export/awsmp/awsmptest"
)

// mapCustomer maps subject to "cust-<subject>" at the time at, with the
// first hour from (zero: the hour at falls in), replacing its mapping, as
// the API does: the From is checked first (odometer.CheckExportCustomerFrom)
// and its error returned.
func (e *env) mapCustomer(subject string, from, at time.Time) error {
	e.t.Helper()
	ctx := e.t.Context()
	d, err := e.store.FindExportDestination(ctx, "default", "aws")
	if err != nil {
		e.t.Fatal(err)
	}
	cs, err := e.store.ListExportCustomers(ctx, "default", "aws")
	if err != nil {
		e.t.Fatal(err)
	}
	var prev *odometer.ExportCustomer
	if i := slices.IndexFunc(cs, func(c *odometer.ExportCustomer) bool { return c.Subject == subject }); i >= 0 {
		prev = cs[i]
	}
	c := &odometer.ExportCustomer{Namespace: "default", Destination: "aws", Subject: subject,
		CustomerID: "cust-" + subject, From: from, CreatedAt: at, UpdatedAt: at}
	if err := odometer.CheckExportCustomerFrom(c, prev, d, at); err != nil {
		return err
	}
	if err := e.store.PutExportCustomer(ctx, c); err != nil {
		e.t.Fatal(err)
	}
	return nil
}

func (e *env) mustMap(subject string, from, at time.Time) {
	e.t.Helper()
	if err := e.mapCustomer(subject, from, at); err != nil {
		e.t.Fatalf("map %s from %s at %s: %v", subject, from, at, err)
	}
}

// sentOnce fails the test if a (customer, dimension, hour) was sent more
// than once.
func (e *env) sentOnce() {
	e.t.Helper()
	n := map[awsmptest.Key]int{}
	for _, r := range e.aws.Sent() {
		k := awsmptest.Key{Customer: r.Customer(), Dimension: r.Dimension, Hour: r.Hour()}
		if n[k]++; n[k] == 2 {
			e.t.Errorf("%v was sent more than once", k)
		}
	}
}

// lateHours formats a record's audit trail as "hour=usage" pairs, the hours
// numbered from the destination's first.
func (e *env) lateHours(r *odometer.ExportRecord) string {
	var s []string
	for _, l := range r.LateHours {
		s = append(s, fmt.Sprintf("%d=%s", int(l.Hour.Sub(e.base)/time.Hour), l.Usage))
	}
	return strings.Join(s, " ")
}

// A mapping made at 11:40 with from 09:00 (here 09:00 is hour 1 and the
// mapping is made 40 minutes into hour 3, after hours 0 to 2 were frozen
// without it): the usage of 09:00 to 11:00 goes out once, as late usage of
// hour 3 with the hours it came from, and later late usage of those hours
// follows as usual; usage at 08:59 never goes out. A mapping made at the
// same time without from starts at 11:00, as before. Moving from earlier
// sends the newly covered hours as late usage; moving it later stops late
// usage of the hours it leaves, and unsends nothing.
func TestFromExportsEarlierHours(t *testing.T) {
	storeKinds(t, func(t *testing.T, open func(t *testing.T) odometer.Store) {
		e := newEnv(t, open(t), nil)
		subjects := []string{"alice", "bob", "carol"}
		for _, s := range subjects {
			e.job(s, e.hour(1).Add(-time.Minute), "3600", "eu") // 08:59
			e.job(s, e.hour(1).Add(10*time.Minute), "50", "eu")
			e.job(s, e.hour(2).Add(20*time.Minute), "50", "eu")
			e.job(s, e.hour(3).Add(5*time.Minute), "10.5", "eu")
		}
		e.round(e.closed(2))
		if n := len(e.records(odometer.ExportRecordFilter{})); n != 0 {
			t.Fatalf("%d records before any mapping", n)
		}
		made := e.hour(3).Add(40 * time.Minute) // 11:40
		e.mustMap("alice", e.hour(1), made)
		e.mustMap("bob", time.Time{}, made)
		e.mustMap("carol", e.hour(1), made)
		e.round(e.closed(3))

		// alice: hour 3's own 10.5 s with the 100 s of hours 1 and 2:
		// 110.5 s = 3 hundredths and 2.5 s carried.
		for _, want := range []struct {
			dimension, usage, late, carry, trail string
			quantity                             int64
		}{
			{"hours", "10.5", "100", "2.5", "1=50 2=50", 3},
			{"calls", "1", "2", "0", "1=1 2=1", 3},
		} {
			r := e.record("alice", want.dimension, e.hour(3))
			if r.Status != odometer.ExportAccepted || r.Quantity != want.quantity || r.Usage.String() != want.usage ||
				r.Late.String() != want.late || r.Carry.String() != want.carry || e.lateHours(r) != want.trail {
				t.Errorf("alice %s hour 3: %s, quantity %d, usage %s, late %s [%s], carry %s; want accepted, %d, %s, %s [%s], %s",
					want.dimension, r.Status, r.Quantity, r.Usage, r.Late, e.lateHours(r), r.Carry,
					want.quantity, want.usage, want.late, want.trail, want.carry)
			}
			// Hours 1 and 2 get the empty records that account their usage.
			for h := 1; h <= 2; h++ {
				r := e.record("alice", want.dimension, e.hour(h))
				if r.Status != odometer.ExportEmpty || r.Quantity != 0 || r.Accounted.String() != map[string]string{"hours": "50", "calls": "1"}[want.dimension] {
					t.Errorf("alice %s hour %d: %+v", want.dimension, h, r)
				}
			}
		}
		// bob, without from, starts at 11:00, the hour it was mapped in.
		bobs := e.records(odometer.ExportRecordFilter{Subject: "bob"})
		if len(bobs) != 2 || slices.ContainsFunc(bobs, func(r *odometer.ExportRecord) bool { return !r.Hour.Equal(e.hour(3)) || !r.Late.IsZero() }) {
			t.Fatalf("bob has %d records, want the two of hour 3, without late usage", len(bobs))
		}
		// Nobody has a record of hour 0, the hour of 08:59.
		if recs := e.records(odometer.ExportRecordFilter{From: e.hour(0), To: e.hour(1)}); len(recs) != 0 {
			t.Fatalf("%d records of hour 0", len(recs))
		}

		// Late usage: of 08:59's hour, never sent; of 09:00's, sent in
		// hour 4 as for any mapping.
		e.job("alice", e.hour(0).Add(30*time.Minute), "720", "eu")
		e.job("alice", e.hour(1).Add(30*time.Minute), "36", "eu")
		e.round(e.closed(4))
		if r := e.record("alice", "hours", e.hour(4)); r.Quantity != 1 || r.Late.String() != "36" || e.lateHours(r) != "1=36" || r.Carry.String() != "2.5" {
			t.Errorf("alice hours hour 4: quantity %d, late %s [%s], carry %s; want 1, 36 [1=36], 2.5", r.Quantity, r.Late, e.lateHours(r), r.Carry)
		}

		// Moved earlier, bob's from covers hour 2, which goes out as late
		// usage of the next hour frozen; hour 1 stays out. Moved later,
		// carol's from leaves hours 1 to 3 sent, and late usage of hour 2
		// is no longer looked for.
		e.mustMap("bob", e.hour(2), e.closed(4))
		e.mustMap("carol", e.hour(4), e.closed(4))
		e.job("carol", e.hour(2).Add(40*time.Minute), "72", "eu")
		e.round(e.closed(5))
		if r := e.record("bob", "hours", e.hour(5)); r.Late.String() != "50" || e.lateHours(r) != "2=50" {
			t.Errorf("bob hours hour 5: late %s [%s], want 50 [2=50]", r.Late, e.lateHours(r))
		}
		if recs := e.records(odometer.ExportRecordFilter{Subject: "carol", From: e.hour(4)}); len(recs) != 0 {
			t.Errorf("carol has %d records after moving from later, without usage", len(recs))
		}
		if r := e.record("carol", "hours", e.hour(2)); r.Accounted.String() != "50" {
			t.Errorf("carol hour 2 accounts %s, want 50: late usage before from was counted", r.Accounted)
		}
		if got := e.aws.Total("cust-carol", "hours"); got != 3 {
			t.Errorf("AWS metered %d for carol, want 3 (hours 1 to 3)", got)
		}

		e.sentOnce()
		for _, k := range e.aws.Keys() {
			if k.Hour.Before(e.hour(3)) {
				t.Errorf("a record of hour %s was sent: earlier usage goes out as late usage of a later hour", k.Hour)
			}
		}
		e.checkExactSince(e.hour(1), "alice", "hours", 36)
		e.checkExactSince(e.hour(1), "alice", "calls", 1)
		e.checkExactSince(e.hour(2), "bob", "hours", 36)
		e.checkExactSince(e.hour(2), "bob", "calls", 1)
	})
}

// The oldest from accepted, the current hour − lateHorizon, is exported
// whole, whether the mapping is made before the previous hour is frozen
// or after; an hour older is refused, naming from.
func TestFromAtTheLateHorizon(t *testing.T) {
	storeKinds(t, func(t *testing.T, open func(t *testing.T) odometer.Store) {
		e := newEnv(t, open(t), func(d *odometer.ExportDestination) { d.LateHorizon = 3 * time.Hour })
		for _, s := range []string{"alice", "bob"} {
			for h := range 6 {
				e.job(s, e.hour(h).Add(time.Duration(h)*time.Minute), "36", "eu")
			}
		}
		e.round(e.closed(3))
		// 5 minutes into hour 5, hour 4 is not frozen yet; the oldest from
		// is hour 2.
		for _, m := range []struct {
			subject string
			at      time.Time
		}{{"bob", e.hour(5).Add(5 * time.Minute)}, {"alice", e.hour(5).Add(40 * time.Minute)}} {
			err := e.mapCustomer(m.subject, e.hour(1), m.at)
			if odometer.ErrorCode(err) != odometer.EINVALID || len(odometer.ErrorFields(err)) != 1 ||
				odometer.ErrorFields(err)[0].Field != "from" || !strings.Contains(err.Error(), "lateHorizon (3h)") {
				t.Fatalf("from 3 hours and more before the current hour: %v; want EINVALID naming from and lateHorizon", err)
			}
			e.mustMap(m.subject, e.hour(2), m.at)
			if m.subject == "bob" {
				e.round(e.closed(4)) // bob's first hour frozen: 4
			}
		}
		e.round(e.closed(5)) // alice's: 5
		if r := e.record("bob", "calls", e.hour(4)); e.lateHours(r) != "2=1 3=1" || r.Quantity != 3 {
			t.Errorf("bob hour 4: quantity %d, late [%s]; want 3, [2=1 3=1]", r.Quantity, e.lateHours(r))
		}
		if r := e.record("alice", "calls", e.hour(5)); e.lateHours(r) != "2=1 3=1 4=1" || r.Quantity != 4 {
			t.Errorf("alice hour 5: quantity %d, late [%s]; want 4, [2=1 3=1 4=1]", r.Quantity, e.lateHours(r))
		}
		if recs := e.records(odometer.ExportRecordFilter{To: e.hour(2)}); len(recs) != 0 {
			t.Errorf("%d records before from", len(recs))
		}
		e.sentOnce()
		for _, s := range []string{"alice", "bob"} {
			e.checkExactSince(e.hour(2), s, "hours", 36)
			e.checkExactSince(e.hour(2), s, "calls", 1)
		}
	})
}
