package usage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/odometerhq/odometer"
)

// A rollup cell's value is a list of partial aggregates, each a uvarint
// length and a body:
//
//	byte(aggregation) uvarint(n) varint(first event time, µs)
//	then, by aggregation:
//	  SUM, AVG  dec(sum)
//	  COUNT     nothing
//	  MIN       dec(min)
//	  MAX       dec(max)
//	  LATEST    dec(value) varint(time, µs) varint(ingested, µs) str(source) str(id)
//
// where str is a uvarint length and the bytes, and dec a decimal: 0,
// varint(coefficient), varint(exponent) when the coefficient fits an
// int64, else 1 and str(Decimal.String's notation). Lists concatenate: the concatenation of two
// values is the value of the union of their events, so a store may append
// a batch's partial to a cell without reading it (Pebble's concatenating
// merge), and fold the list into one partial whenever it likes.

var aggCodes = map[odometer.Aggregation]byte{
	odometer.Sum: 1, odometer.Count: 2, odometer.Avg: 3, odometer.Min: 4, odometer.Max: 5, odometer.Latest: 6,
}

var errCorruptPartial = errors.New("corrupt rollup cell value")

// appendPartial appends g's aggregate, as a one-element list, to dst.
func appendPartial(dst []byte, agg odometer.Aggregation, g *group) []byte {
	var body [64]byte
	b := append(body[:0], aggCodes[agg])
	b = binary.AppendUvarint(b, uint64(g.n))
	b = binary.AppendVarint(b, g.first.UnixMicro())
	dec := func(b []byte, x odometer.Decimal) []byte {
		if c, e, ok := x.Parts(); ok {
			return binary.AppendVarint(binary.AppendVarint(append(b, 0), c), int64(e))
		}
		s := x.String()
		return append(binary.AppendUvarint(append(b, 1), uint64(len(s))), s...)
	}
	str := func(b []byte, s string) []byte {
		return append(binary.AppendUvarint(b, uint64(len(s))), s...)
	}
	switch agg {
	case odometer.Sum, odometer.Avg:
		b = dec(b, g.sum)
	case odometer.Min:
		b = dec(b, g.min)
	case odometer.Max:
		b = dec(b, g.max)
	case odometer.Latest:
		b = dec(b, g.latest)
		b = binary.AppendVarint(b, g.latestTime.UnixMicro())
		b = binary.AppendVarint(b, g.latestIngested.UnixMicro())
		b = str(b, g.latestSource)
		b = str(b, g.latestID)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// FoldPartials returns the list v folded into one partial aggregate of the
// meter's aggregation: what a store writes to shorten a cell's value.
func FoldPartials(agg odometer.Aggregation, v []byte) ([]byte, error) {
	var g group
	if err := foldPartials(agg, &g, v); err != nil {
		return nil, err
	}
	return appendPartial(nil, agg, &g), nil
}

// FoldList returns the list v folded into one partial aggregate of the
// aggregation its partials name, and whether it could: false for an empty
// or corrupt list, or one whose partials name different aggregations. It
// is for Pebble's merges, which see a cell's operands without its rollup:
// where it cannot fold, the concatenation stays as valid as before.
func FoldList(v []byte) ([]byte, bool) {
	n, k := binary.Uvarint(v)
	if k <= 0 || n == 0 || uint64(len(v)-k) < n {
		return nil, false
	}
	agg, ok := aggOfCode(v[k])
	if !ok {
		return nil, false
	}
	folded, err := FoldPartials(agg, v)
	if err != nil {
		return nil, false
	}
	return folded, true
}

// foldPartials merges every partial aggregate of the list v into g.
func foldPartials(agg odometer.Aggregation, g *group, v []byte) error {
	for len(v) > 0 {
		n, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < n {
			return errCorruptPartial
		}
		var p group
		if err := decodePartial(agg, &p, v[k:k+int(n)]); err != nil {
			return err
		}
		g.merge(agg, &p)
		v = v[k+int(n):]
	}
	return nil
}

func decodePartial(agg odometer.Aggregation, p *group, b []byte) error {
	if len(b) == 0 || b[0] != aggCodes[agg] {
		return fmt.Errorf("%w: not a %s aggregate", errCorruptPartial, agg)
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 {
		return errCorruptPartial
	}
	b = b[k:]
	p.n = int64(n)
	first, k := binary.Varint(b)
	if k <= 0 {
		return errCorruptPartial
	}
	b = b[k:]
	p.first = time.UnixMicro(first).UTC()
	field := func() ([]byte, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, false
		}
		f := b[k : k+int(n)]
		b = b[k+int(n):]
		return f, true
	}
	dec := func(x *odometer.Decimal) bool {
		if len(b) == 0 {
			return false
		}
		kind := b[0]
		b = b[1:]
		if kind == 0 {
			c, k := binary.Varint(b)
			if k <= 0 {
				return false
			}
			e, k2 := binary.Varint(b[k:])
			if k2 <= 0 || e != int64(int32(e)) {
				return false
			}
			b = b[k+k2:]
			*x = odometer.NewDecimal(c, int32(e))
			return true
		}
		f, ok := field()
		if !ok || kind != 1 {
			return false
		}
		d, err := odometer.ParseDecimal(string(f))
		*x = d
		return err == nil
	}
	ok := true
	switch agg {
	case odometer.Sum, odometer.Avg:
		ok = dec(&p.sum)
	case odometer.Min:
		ok = dec(&p.min)
	case odometer.Max:
		ok = dec(&p.max)
	case odometer.Latest:
		ok = dec(&p.latest)
		if ok {
			t, k := binary.Varint(b)
			ok = k > 0
			b = b[max(k, 0):]
			in, k2 := binary.Varint(b)
			ok = ok && k2 > 0
			b = b[max(k2, 0):]
			p.latestTime, p.latestIngested = time.UnixMicro(t).UTC(), time.UnixMicro(in).UTC()
		}
		var src, id []byte
		if ok {
			src, ok = field()
		}
		if ok {
			id, ok = field()
		}
		p.latestSource, p.latestID = string(src), string(id)
	}
	if !ok || len(b) != 0 {
		return errCorruptPartial
	}
	return nil
}
