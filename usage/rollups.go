package usage

import (
	"context"
	"slices"
	"time"

	"github.com/odometerhq/odometer"
)

// piece is a bucket that a query takes from a rollup: it lies wholly
// inside one of the query's windows.
type piece struct {
	size  time.Duration
	start time.Time
}

// span is a range of event time [from, to).
type span struct{ from, to time.Time }

// plan splits the query's range into pieces, buckets of the given sizes
// (finest first) that lie wholly inside one window, the largest that fit,
// and slivers, the parts of windows too short or misaligned for any
// bucket: where a window starts or ends off the finest size. Pieces come
// in time order.
func (a *usageAgg) plan(from, to time.Time, sizes []time.Duration) (pieces []piece, slivers []span) {
	each := func(s, e time.Time) {
		q0, q1 := ceilTime(s, sizes[0]), e.Truncate(sizes[0])
		if !q0.Before(q1) {
			slivers = append(slivers, span{s, e})
			return
		}
		if s.Before(q0) {
			slivers = append(slivers, span{s, q0})
		}
		for p := q0; p.Before(q1); {
			size := sizes[0]
			for _, z := range sizes[1:] {
				if p.Truncate(z).Equal(p) && !p.Add(z).After(q1) {
					size = z
				}
			}
			pieces = append(pieces, piece{size, p})
			p = p.Add(size)
		}
		if q1.Before(e) {
			slivers = append(slivers, span{q1, e})
		}
	}
	if a.q.WindowSize == "" {
		each(from, to)
		return pieces, slivers
	}
	for s := from; s.Before(to); {
		_, we := a.q.WindowSize.Window(s, a.loc)
		e := minTime(we, to)
		each(s, e)
		s = e
	}
	return pieces, slivers
}

func ceilTime(t time.Time, d time.Duration) time.Time {
	c := t.Truncate(d)
	if c.Before(t) {
		c = c.Add(d)
	}
	return c
}

// bucketRange is a run of adjacent pieces of one size: bucket starts
// [from, to).
type bucketRange struct {
	size     time.Duration
	from, to time.Time
}

// ranges coalesces pieces into runs of adjacent buckets of one size.
func ranges(pieces []piece) []bucketRange {
	var out []bucketRange
	last := map[time.Duration]int{}
	for _, p := range pieces {
		if i, ok := last[p.size]; ok && out[i].to.Equal(p.start) {
			out[i].to = p.start.Add(p.size)
			continue
		}
		last[p.size] = len(out)
		out = append(out, bucketRange{p.size, p.start, p.start.Add(p.size)})
	}
	return out
}

// queryRollups answers the query from the store's rollup of the meter, if
// it has one, and reports whether it did. It reads, in one snapshot, the
// cells of the pieces, the events of the slivers, and, while the rollup's
// backfill runs, the events it does not hold yet: each event is counted
// exactly once.
func queryRollups(ctx context.Context, rs odometer.RollupStore, a *usageAgg, subjects []string) (bool, error) {
	m := a.m
	snap, err := rs.Snapshot(ctx)
	if err != nil {
		return false, err
	}
	defer snap.Close()
	list, err := snap.Rollups(ctx, m.Namespace)
	if err != nil {
		return false, err
	}
	fp := Fingerprint(m.Meter)
	i := slices.IndexFunc(list, func(r odometer.Rollup) bool { return r.Fingerprint == fp })
	if i < 0 {
		return false, nil
	}
	r := list[i]
	bySubject := a.bySubject || a.subjectFilter != nil || len(subjects) > 0
	// Few combinations of group values recur in many cells: each is
	// decoded once.
	decoded := map[string][]*string{}
	cell := func(c *odometer.RollupCell) error {
		vals, ok := decoded[string(c.Groups)]
		if !ok {
			var err error
			if vals, err = decodeGroupValues(c.Groups, len(m.GroupKeys())); err != nil {
				return err
			}
			decoded[string(c.Groups)] = vals
		}
		if !a.passes(c.Subject, vals) {
			return nil
		}
		p := &group{vals: vals}
		if err := foldPartials(m.Aggregation, p, c.Value); err != nil {
			return err
		}
		// Without windows, rows are keyed by the zero window, as
		// usageAgg.event keys them.
		var w0, w1 time.Time
		if a.q.WindowSize != "" {
			w0, w1 = a.q.WindowSize.Window(c.Bucket, a.loc)
		}
		if err := a.merge(c.Subject, w0, w1, p); err != nil {
			return err
		}
		if a.first.IsZero() || p.first.Before(a.first) {
			a.first = p.first
		}
		return nil
	}
	scan := odometer.RollupScan{Rollup: r.ID, BySubject: bySubject, Subjects: subjects}

	from := a.from
	if from.IsZero() {
		if !r.Backfilled {
			return false, nil // reading every event is simpler, and as exact
		}
		// The earliest event the query counts starts the range: found in
		// the days' cells.
		s := scan
		s.Size, s.To = 24*time.Hour, a.to
		err := snap.ReadRollups(ctx, s, func(c *odometer.RollupCell) error {
			vals, err := decodeGroupValues(c.Groups, len(m.GroupKeys()))
			if err != nil {
				return err
			}
			if !a.passes(c.Subject, vals) {
				return nil
			}
			var p group
			if err := foldPartials(m.Aggregation, &p, c.Value); err != nil {
				return err
			}
			if from.IsZero() || p.first.Before(from) {
				from = p.first
			}
			return nil
		})
		if err != nil {
			return false, err
		}
		if from.IsZero() {
			return true, nil // no usage
		}
	}
	sizes := AllSizes
	if bySubject {
		sizes = SubjectSizes
	}
	pieces, slivers := a.plan(from, a.to, sizes)
	for _, br := range ranges(pieces) {
		s := scan
		s.Size, s.From, s.To = br.size, br.from, br.to
		if err := snap.ReadRollups(ctx, s, cell); err != nil {
			return false, err
		}
	}
	for _, sl := range slivers {
		if err := snap.ScanEvents(ctx, odometer.EventScan{Namespace: m.Namespace, Type: m.EventType, Subjects: subjects,
			From: sl.from, To: sl.to}, a.event); err != nil {
			return false, err
		}
	}
	if !r.Backfilled {
		inSliver := func(t time.Time) bool {
			i, _ := slices.BinarySearchFunc(slivers, t, func(s span, t time.Time) int {
				if !s.to.After(t) {
					return -1
				}
				if s.from.After(t) {
					return 1
				}
				return 0
			})
			return i < len(slivers) && !slivers[i].from.After(t) && slivers[i].to.After(t)
		}
		err := snap.ScanEvents(ctx, odometer.EventScan{Namespace: m.Namespace, Type: m.EventType, Subjects: subjects,
			From: from, To: a.to, NotRolledUp: r.ID}, func(e *odometer.ScannedEvent) error {
			if inSliver(e.Time) {
				return nil // counted by its sliver's scan
			}
			return a.event(e)
		})
		if err != nil {
			return false, err
		}
	}
	return true, nil
}
