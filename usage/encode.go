package usage

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/odometerhq/odometer"
)

// A store that writes cells behind its events (PostgreSQL keeps a batch's
// cells in one row beside its events, folded into the cells table later)
// keeps Cells in this encoding meanwhile: for each cell, as Cells keeps it
// (cells for all subjects at the finest size only),
//
//	uvarint(len(key)) key  uvarint(len(value)) value
//
// where key is the cell's key in Cells.index (rollup, size and bucket as
// big-endian uint64s, 0 or 1 and the subject as a uvarint length and its
// bytes, the group values) and value its one-partial aggregate, whose
// first byte names the aggregation.

// AppendEncoded appends the encoding of cs's cells to dst. cs is only read.
func (cs *Cells) AppendEncoded(dst []byte) []byte {
	var val []byte
	for _, a := range cs.cells {
		dst = binary.AppendUvarint(dst, uint64(len(a.key)))
		dst = append(dst, a.key...)
		val = appendPartial(val[:0], a.agg, &a.g)
		dst = binary.AppendUvarint(dst, uint64(len(val)))
		dst = append(dst, val...)
	}
	return dst
}

// AddEncoded adds the cells of b, made by AppendEncoded, to cs: those of
// the rollups that keep accepts (nil: all).
func (cs *Cells) AddEncoded(b []byte, keep func(rollup uint64) bool) error {
	if keep == nil {
		return cs.addEncoded(b, nil)
	}
	return cs.addEncoded(b, func(rollup uint64, _ bool, _ []byte) bool { return keep(rollup) })
}

// addEncoded is AddEncoded with a filter that also sees whether a cell is
// a subject's, and which (the subject's bytes, valid during the call), so
// that the cells it drops cost no allocation.
func (cs *Cells) addEncoded(b []byte, keep func(rollup uint64, bySubject bool, subject []byte) bool) error {
	next := func() ([]byte, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, errCorruptPartial
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v, nil
	}
	for len(b) > 0 {
		key, err := next()
		if err != nil {
			return fmt.Errorf("encoded cells: %w", err)
		}
		val, err := next()
		if err != nil {
			return fmt.Errorf("encoded cells: %w", err)
		}
		if len(key) < 25 || len(val) < 2 {
			return fmt.Errorf("encoded cells: %w", errCorruptPartial)
		}
		rollup := binary.BigEndian.Uint64(key)
		rest, subj, bySubject := key[25:], []byte(nil), key[24] == 1
		if bySubject {
			n, k := binary.Uvarint(rest)
			if k <= 0 || uint64(len(rest)-k) < n {
				return fmt.Errorf("encoded cells: %w", errCorruptPartial)
			}
			subj, rest = rest[k:k+int(n)], rest[k+int(n):]
		}
		if keep != nil && !keep(rollup, bySubject, subj) {
			continue
		}
		size := time.Duration(binary.BigEndian.Uint64(key[8:]))
		bucket := time.Unix(int64(binary.BigEndian.Uint64(key[16:])), 0).UTC()
		subject := string(subj)
		// val is one length-prefixed partial; its body starts with the
		// aggregation's code.
		_, k := binary.Uvarint(val)
		agg, ok := aggOfCode(val[k])
		if !ok || size <= 0 {
			return fmt.Errorf("encoded cells: %w", errCorruptPartial)
		}
		a := cs.cell(rollup, agg, size, bucket, subject, bySubject, rest)
		var g group
		if err := foldPartials(agg, &g, val); err != nil {
			return fmt.Errorf("encoded cells: %w", err)
		}
		a.g.merge(agg, &g)
	}
	return nil
}

func aggOfCode(c byte) (odometer.Aggregation, bool) {
	for agg, code := range aggCodes {
		if code == c {
			return agg, true
		}
	}
	return "", false
}

// Deltas are the encoded cells (AppendEncoded) of appends that a store
// has not folded into its cells yet, as one snapshot read them. Each
// rollup's are decoded on first use, once per snapshot.
type Deltas struct {
	rows [][]byte
	// cells holds the cells decoded for each scan's rollup (the key's
	// first 8 bytes) and, for scans that name subjects, those subjects
	// (length-prefixed after it).
	cells map[string]*Cells
}

// NewDeltas holds rows, each made by AppendEncoded; they are only read.
func NewDeltas(rows [][]byte) *Deltas { return &Deltas{rows: rows, cells: map[string]*Cells{}} }

// Scan calls fn for the cells of every row that s selects, as Cells.Scan
// does. A scan that names its subjects (a customer's usage, a credit
// check) decodes only their cells, so that it costs a pass over the rows
// rather than every subject's cells.
func (d *Deltas) Scan(s odometer.RollupScan, fn func(*odometer.RollupCell) error) error {
	key := binary.BigEndian.AppendUint64(nil, s.Rollup)
	var want map[string]bool // nil: every subject's cells and all subjects'
	if s.BySubject && len(s.Subjects) > 0 {
		want = make(map[string]bool, len(s.Subjects))
		for _, subj := range s.Subjects {
			key = append(binary.AppendUvarint(key, uint64(len(subj))), subj...)
			want[subj] = true
		}
	}
	cs, ok := d.cells[string(key)]
	if !ok {
		keep := func(rollup uint64, bySubject bool, subject []byte) bool {
			return rollup == s.Rollup && (want == nil || bySubject && want[string(subject)])
		}
		cs = &Cells{}
		for _, b := range d.rows {
			if err := cs.addEncoded(b, keep); err != nil {
				return err
			}
		}
		d.cells[string(key)] = cs
	}
	return cs.Scan(s, fn)
}

// RunFold calls fold every interval until ctx ends, and again at once
// while a fold moves full deltas (a full transaction's worth), so that
// folding keeps up with ingestion. It reports fold's errors to warn,
// except those of ctx ending.
func RunFold(ctx context.Context, interval time.Duration, full int, fold func(context.Context) (int, error), warn func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			n, err := fold(ctx)
			if err != nil {
				if ctx.Err() == nil {
					warn(err)
				}
				break
			}
			if n < full {
				break
			}
		}
	}
}
