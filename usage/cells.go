package usage

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/odometerhq/odometer"
)

// Quarter is the finest bucket of a rollup's cells for all subjects.
// Every zone offset in use today is a whole number of quarter hours
// (Asia/Kathmandu is +05:45), so every window of an HOUR, DAY or MONTH
// query in any zone is a union of quarters; docs/rollups.md has the
// exceptions.
const Quarter = 15 * time.Minute

// AllSizes lists the bucket sizes of a rollup's cells for all subjects,
// finest first, and SubjectSizes those of its cells per subject. Each
// size is a whole number of the one before it, and each bucket starts at
// a multiple of its size since the Unix epoch: UTC quarters, hours and
// days. Cells per subject are whole UTC days only: with events spread
// over many subjects nearly every event makes cells of its own, and each
// finer size would cost every append another write, while a query for
// named subjects reads few events anyway. The parts of its windows that
// are not whole UTC days (all of them, for DAY windows in a zone other
// than UTC) are read from events (docs/rollups.md).
var (
	AllSizes     = []time.Duration{Quarter, time.Hour, 24 * time.Hour}
	SubjectSizes = []time.Duration{24 * time.Hour}
)

// Cell is one rollup cell's contribution from a batch of events: Value is
// a list of partial aggregates (see partial.go) to add to the stored cell.
type Cell struct {
	Rollup    uint64
	Size      time.Duration
	Bucket    time.Time
	BySubject bool
	Subject   string // "" when not BySubject
	Groups    []byte // GroupValues
	Value     []byte
}

// Roller computes the cells of one rollup.
type Roller struct {
	Rollup odometer.Rollup
	m      *odometer.CompiledMeter
}

// NewRoller compiles a rollup's definition.
func NewRoller(r odometer.Rollup) (*Roller, error) {
	m := r.Meter
	m.Slug = "rollup" // Validate wants one; the definition has none
	cm, err := m.Compile()
	if err != nil {
		return nil, fmt.Errorf("rollup %d: %w", r.ID, err)
	}
	return &Roller{Rollup: r, m: cm}, nil
}

// Definition returns the part of m that decides which events count and
// how: a rollup's Meter.
func Definition(m *odometer.Meter) odometer.Meter {
	return odometer.Meter{Namespace: m.Namespace, EventType: m.EventType, Aggregation: m.Aggregation,
		ValueProperty: m.ValueProperty, EventFrom: m.EventFrom, GroupBy: m.GroupBy, Filters: m.Filters}
}

// Rollable reports whether a meter's usage can be rolled up: every
// aggregation but UNIQUE_COUNT, whose distinct values do not add up across
// buckets, so its queries read events (docs/rollups.md).
func Rollable(m *odometer.Meter) bool { return m.Aggregation != odometer.UniqueCount }

// Fingerprint identifies everything about a meter that decides which
// events it counts and how.
func Fingerprint(m *odometer.Meter) [sha256.Size]byte { return meterFingerprint(m) }

// Cells accumulates the cells of a batch of events, one per distinct
// (rollup, size, bucket, subject or all, group values): for all subjects
// at the finest size only, per subject at each of SubjectSizes.
type Cells struct {
	index map[string]*cellAcc
	cells []*cellAcc // in the order they were made
	slab  []cellAcc  // where the next ones are made: one allocation per many
	key   []byte
	gv    []byte
}

type cellAcc struct {
	key string // its key in Cells.index
	c   Cell
	agg odometer.Aggregation
	g   group
}

// Add counts e, an event of r's namespace and type, into its cells if r's
// meter counts it.
func (cs *Cells) Add(r *Roller, e *odometer.ScannedEvent) {
	m := r.m
	if !m.Matches(e.Time, e.Data) {
		return
	}
	var val odometer.Decimal
	if m.Aggregation != odometer.Count {
		v, ok, err := m.ValuePath().Value(e.Data)
		if err != nil || !ok {
			return // not counted, as a query from events would not
		}
		val = v
	}
	cs.gv = appendGroupValues(cs.gv[:0], m, e.Data)
	// Cells for all subjects are kept at the finest size only: Cells
	// adds them up into the coarser sizes, and Scan reads them for any.
	cs.cell(r.Rollup.ID, m.Aggregation, AllSizes[0], e.Time, "", false, cs.gv).g.add(m.Aggregation, val, "", e)
	for _, size := range SubjectSizes {
		cs.cell(r.Rollup.ID, m.Aggregation, size, e.Time, e.Subject, true, cs.gv).g.add(m.Aggregation, val, "", e)
	}
}

// cell returns the cell of the bucket of the given size that t falls in,
// making it if needed.
func (cs *Cells) cell(rollup uint64, agg odometer.Aggregation, size time.Duration, t time.Time, subject string, bySubject bool, groups []byte) *cellAcc {
	if cs.index == nil {
		cs.index = map[string]*cellAcc{}
	}
	bucket := t.Truncate(size)
	k := binary.BigEndian.AppendUint64(cs.key[:0], rollup)
	k = binary.BigEndian.AppendUint64(k, uint64(size))
	k = binary.BigEndian.AppendUint64(k, uint64(bucket.Unix()))
	if bySubject {
		k = append(k, 1)
		k = binary.AppendUvarint(k, uint64(len(subject)))
		k = append(k, subject...)
	} else {
		k = append(k, 0)
	}
	k = append(k, groups...)
	cs.key = k
	a, ok := cs.index[string(k)]
	if !ok {
		a = cs.newAcc()
		*a = cellAcc{key: string(k), agg: agg, c: Cell{Rollup: rollup, Size: size, Bucket: bucket,
			BySubject: bySubject, Subject: subject, Groups: slices.Clone(groups)}}
		cs.index[a.key] = a
	}
	return a
}

// Len returns the number of cells.
func (cs *Cells) Len() int { return len(cs.cells) }

// newAcc returns a new, zero cell, added to cs.cells.
func (cs *Cells) newAcc() *cellAcc {
	if len(cs.slab) == cap(cs.slab) {
		cs.slab = make([]cellAcc, 0, 256)
	}
	cs.slab = cs.slab[:len(cs.slab)+1]
	a := &cs.slab[len(cs.slab)-1]
	cs.cells = append(cs.cells, a)
	return a
}

// Cells returns the accumulated cells, each with its Value, and the cells
// for all subjects also at every coarser size of AllSizes. cs is only
// read.
func (cs *Cells) Cells() []Cell {
	var coarse Cells
	out := make([]Cell, 0, len(cs.cells))
	for _, a := range cs.cells {
		c := a.c
		c.Value = appendPartial(nil, a.agg, &a.g)
		out = append(out, c)
		if !c.BySubject {
			for _, size := range AllSizes[1:] {
				coarse.cell(c.Rollup, a.agg, size, c.Bucket, "", false, c.Groups).g.merge(a.agg, &a.g)
			}
		}
	}
	for _, a := range coarse.cells {
		c := a.c
		c.Value = appendPartial(nil, a.agg, &a.g)
		out = append(out, c)
	}
	return out
}

// Merge adds the cells of o to cs; o is only read.
func (cs *Cells) Merge(o *Cells) {
	if cs.index == nil {
		cs.index = map[string]*cellAcc{}
	}
	for _, a := range o.cells {
		if b, ok := cs.index[a.key]; ok {
			b.g.merge(a.agg, &a.g)
			continue
		}
		b := cs.newAcc()
		*b = *a
		cs.index[b.key] = b
	}
}

// Scan calls fn for each cell of cs that s selects, in no particular
// order, with its aggregate as a one-partial Value: for s.Size, the cells
// of that size or of a finer one that divides it, whose buckets start in
// [s.From, s.To), which must be whole buckets of s.Size. cs is only read, so
// several goroutines may scan one Cells that nothing adds to any more.
func (cs *Cells) Scan(s odometer.RollupScan, fn func(*odometer.RollupCell) error) error {
	var rc odometer.RollupCell
	var val []byte
	for _, a := range cs.cells {
		c := &a.c
		// Cells for all subjects are at the finest size, and each lies
		// in the bucket of any size that holds its start.
		if c.Rollup != s.Rollup || c.BySubject != s.BySubject || c.Size > s.Size || s.Size%c.Size != 0 ||
			!s.From.IsZero() && c.Bucket.Before(s.From) || !s.To.IsZero() && !c.Bucket.Before(s.To) {
			continue
		}
		if s.BySubject && len(s.Subjects) > 0 {
			if _, ok := slices.BinarySearch(s.Subjects, c.Subject); !ok {
				continue
			}
		}
		val = appendPartial(val[:0], a.agg, &a.g)
		rc = odometer.RollupCell{Bucket: c.Bucket, Subject: c.Subject, Groups: c.Groups, Value: val}
		if err := fn(&rc); err != nil {
			return err
		}
	}
	return nil
}

// AddEvents adds the events appended with outcome Accepted to the cells of
// the rollers that rollers(namespace, type) returns for each.
func (cs *Cells) AddEvents(rollers func(namespace, typ string) []*Roller, events []odometer.Event, outcomes []odometer.Outcome) {
	var se odometer.ScannedEvent
	for i := range events {
		if outcomes[i] != odometer.Accepted {
			continue
		}
		e := &events[i]
		rs := rollers(e.Namespace, e.Type)
		if len(rs) == 0 {
			continue
		}
		se = odometer.ScannedEvent{Subject: e.Subject, Source: e.Source, ID: e.ID, Time: e.Time, IngestedAt: e.IngestedAt, Data: e.Data}
		for _, r := range rs {
			cs.Add(r, &se)
		}
	}
}

// appendGroupValues appends the encoding of the meter's group-by values
// of data (GroupValues) to dst: for each of the meter's group-by keys in
// order, 0 for a missing or null value, or 1, a uvarint length and the
// value's text.
func appendGroupValues(dst []byte, m *odometer.CompiledMeter, data []byte) []byte {
	for _, k := range m.GroupKeys() {
		n := len(dst)
		dst = append(dst, 1, 0) // a placeholder length byte, fixed below
		var ok bool
		dst, ok = groupPath(m, k).AppendText(dst, data)
		if !ok {
			dst = append(dst[:n], 0)
			continue
		}
		l := len(dst) - n - 2
		if l < 0x80 {
			dst[n+1] = byte(l)
			continue
		}
		// A long value: make room for a longer uvarint.
		var lb [binary.MaxVarintLen64]byte
		ln := binary.PutUvarint(lb[:], uint64(l))
		dst = append(dst, lb[:ln-1]...)
		copy(dst[n+1+ln:], dst[n+2:n+2+l])
		copy(dst[n+1:], lb[:ln])
	}
	return dst
}

// decodeGroupValues decodes n group-by values encoded by
// appendGroupValues.
func decodeGroupValues(b []byte, n int) ([]*string, error) {
	vals := make([]*string, n)
	for i := range n {
		if len(b) == 0 {
			return nil, errCorruptPartial
		}
		if b[0] == 0 {
			b = b[1:]
			continue
		}
		l, k := binary.Uvarint(b[1:])
		if k <= 0 || uint64(len(b)-1-k) < l {
			return nil, errCorruptPartial
		}
		s := string(b[1+k : 1+k+int(l)])
		vals[i] = &s
		b = b[1+k+int(l):]
	}
	if len(b) != 0 {
		return nil, errCorruptPartial
	}
	return vals, nil
}
