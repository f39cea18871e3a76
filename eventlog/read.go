package eventlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/odometerhq/odometer"
)

// ctxCheckEvery is how many keys a read visits between context checks.
const ctxCheckEvery = 1024

// ListEvents returns the events matching f, newest event time first and,
// among equal times, the most recently appended first. ID and subject
// filters match substrings literally and case-sensitively. f.Limit must be
// positive (EINVALID otherwise).
//
// It walks the namespace's time index backwards from f.To (or the end) to
// f.From, and reads the record of each entry that the subject filter does
// not rule out; the other filters are checked on the record. A filter that
// matches few events therefore reads the namespace's whole time range, as
// in the sqlite store.
func (l *Log) ListEvents(ctx context.Context, f odometer.EventFilter) ([]odometer.Event, error) {
	if f.Limit <= 0 {
		return nil, odometer.FieldErrorf("limit", "must be positive, got %d", f.Limit)
	}
	if l.closed.Load() {
		return nil, fmt.Errorf("list events: %w", errClosed)
	}
	events, err := l.listEvents(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return events, nil
}

func (l *Log) listEvents(ctx context.Context, f odometer.EventFilter) ([]odometer.Event, error) {
	prefix := timePrefix(nil, f.Namespace)
	lower, upper := timeBounds(prefix, f.From, f.To)
	it, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()

	var (
		ingFrom, ingTo  int64 = minInt64, maxInt64
		subjectSub            = []byte(f.SubjectContains)
		idSub                 = []byte(f.IDContains)
		subject, recKey []byte
		r               recordView
	)
	if !f.IngestedFrom.IsZero() {
		ingFrom = f.IngestedFrom.UnixMicro()
	}
	if !f.IngestedTo.IsZero() {
		ingTo = f.IngestedTo.UnixMicro()
	}
	events := []odometer.Event{}
	n := 0
	for ok := it.Last(); ok && len(events) < f.Limit; ok = it.Prev() {
		if n++; n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		k, mid := it.Key(), it.Value() // mid: str(type) str(subject)
		if len(k) != len(prefix)+suffixLen {
			return nil, errCorruptKey
		}
		suffix := k[len(prefix):]
		typ, rest, err := decodeString(mid)
		if err != nil {
			return nil, err
		}
		subject, _, err = appendDecodedString(subject[:0], rest)
		if err != nil {
			return nil, err
		}
		if !bytes.Contains(subject, subjectSub) {
			continue
		}
		// The record key: 'e' str(ns) str(type) str(subject) time seq.
		recKey = append(append(append(recKey[:0], tagEvent), prefix[1:]...), mid...)
		recKey = append(recKey, suffix...)
		v, closer, err := l.db.Get(recKey)
		if err != nil {
			// Records are written in the same atomic batch as their index
			// entry and never deleted, so this is corruption.
			return nil, fmt.Errorf("record of index entry %x: %w", k, err)
		}
		err = decodeRecord(v, &r)
		if err == nil && r.ingestedAt >= ingFrom && r.ingestedAt < ingTo && bytes.Contains(r.id, idSub) {
			events = append(events, r.event(f.Namespace, typ, string(subject), suffix))
		}
		closer.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	return events, nil
}

// event returns the event whose record r was read under a key of
// namespace ns, type typ and subject, ending with suffix (time, seq). It
// copies what it keeps of r, so the value r points into may be released.
func (r *recordView) event(ns, typ, subject string, suffix []byte) odometer.Event {
	e := odometer.Event{
		Namespace:       ns,
		ID:              string(r.id),
		Source:          string(r.source),
		SpecVersion:     string(r.specVersion),
		Type:            typ,
		Subject:         subject,
		Time:            decodeTime(suffix),
		DataContentType: string(r.dataContentType),
		DataSchema:      string(r.dataSchema),
		IngestedAt:      time.UnixMicro(r.ingestedAt).UTC(),
	}
	if len(r.data) > 0 {
		e.Data = bytes.Clone(r.data)
	}
	return e
}

const (
	minInt64 = -1 << 63
	maxInt64 = 1<<63 - 1
)

// ScanEvents calls fn for each event matching sc, grouped by subject and in
// time order within a subject; each event is delivered once even if a
// subject is listed twice. The whole scan reads one consistent snapshot.
// The ScannedEvent and its Data are reused between calls (Data points into
// Pebble's block). If fn returns an error, the scan stops and ScanEvents
// returns that error unwrapped.
//
// Records are keyed (namespace, type, subject, time, seq), so a subject's
// time range is one contiguous range of keys. Without subjects and with a
// time bound, the scan skips from subject to subject: it seeks to
// (subject, From), reads to To, then seeks past the subject, so a narrow
// window over many subjects costs about two seeks per subject rather than
// a read of every event of every time.
func (l *Log) ScanEvents(ctx context.Context, sc odometer.EventScan, fn func(*odometer.ScannedEvent) error) error {
	if sc.NotRolledUp != 0 {
		// The rollup's position and the events must be read in one view.
		snap, err := l.Snapshot(ctx)
		if err != nil {
			return err
		}
		defer snap.Close()
		return snap.ScanEvents(ctx, sc, fn)
	}
	_, err := l.scan(ctx, sc, fn)
	return err
}

// scan is ScanEvents; it also returns how many times it moved the iterator,
// for tests of the skip-scan.
func (l *Log) scan(ctx context.Context, sc odometer.EventScan, fn func(*odometer.ScannedEvent) error) (steps int, err error) {
	return l.scanOn(ctx, l.db, sc, nil, fn)
}

// scanOn is scan on r (the log or a snapshot of it), leaving out the
// events that mark says to skip, if any.
func (l *Log) scanOn(ctx context.Context, r pebble.Reader, sc odometer.EventScan, mark *notRolledUp, fn func(*odometer.ScannedEvent) error) (steps int, err error) {
	if l.closed.Load() {
		return 0, fmt.Errorf("scan events: %w", errClosed)
	}
	s := scanner{fn: fn, ctx: ctx, mark: mark}
	s.prefix = eventPrefix(nil, sc.Namespace, sc.Type)
	if !sc.From.IsZero() {
		s.from = appendTime(nil, sc.From)
	}
	if !sc.To.IsZero() {
		s.to = appendTime(nil, sc.To)
	}
	if s.from != nil && s.to != nil && bytes.Compare(s.from, s.to) >= 0 {
		return 0, nil // empty range
	}
	it, err := r.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: s.prefix,
		UpperBound: prefixSuccessor(nil, s.prefix),
	})
	if err != nil {
		return 0, fmt.Errorf("scan events: %w", err)
	}
	s.it = it
	if len(sc.Subjects) > 0 {
		subjects := slices.Clone(sc.Subjects)
		slices.Sort(subjects)
		err = s.subjects(slices.Compact(subjects))
	} else {
		err = s.all()
	}
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("scan events: %w", cerr)
	}
	return s.steps, err
}

// scanner holds the state of one ScanEvents call.
type scanner struct {
	ctx      context.Context
	fn       func(*odometer.ScannedEvent) error
	it       *pebble.Iterator
	prefix   []byte // 'e' str(ns) str(type)
	from, to []byte // encoded times; nil = unbounded
	n        int    // events emitted
	steps    int    // iterator moves
	mark     *notRolledUp

	seek    []byte // scratch for seek keys
	subject []byte // the encoded subject that e.Subject decodes
	e       odometer.ScannedEvent
	r       recordView
}

// errFnStop marks fn's error, which must reach the caller unwrapped.
type errFnStop struct{ err error }

func (e errFnStop) Error() string { return e.err.Error() }

// subjects reads the time range of each subject in turn.
func (s *scanner) subjects(subjects []string) error {
	for _, subj := range subjects {
		s.seek = appendString(append(s.seek[:0], s.prefix...), subj)
		subjEnd := len(s.seek)
		if s.from != nil {
			s.seek = append(s.seek, s.from...)
		}
		for ok := s.seekGE(s.seek); ok; ok = s.next() {
			k := s.it.Key()
			if len(k) != subjEnd+suffixLen || !bytes.Equal(k[:subjEnd], s.seek[:subjEnd]) {
				break // past the subject
			}
			if s.to != nil && bytes.Compare(k[subjEnd:subjEnd+8], s.to) >= 0 {
				break
			}
			if err := s.emit(k); err != nil {
				return s.unwrap(err)
			}
		}
		if err := s.it.Error(); err != nil {
			return fmt.Errorf("scan events: %w", err)
		}
	}
	return nil
}

// all reads every subject, skipping the parts of each that lie outside
// [from, to).
func (s *scanner) all() error {
	s.steps++
	ok := s.it.First()
	for ok {
		k := s.it.Key()
		if len(k) < len(s.prefix)+suffixLen+2 {
			return fmt.Errorf("scan events: %w", errCorruptKey)
		}
		subjEnd := len(k) - suffixLen
		t := k[subjEnd : subjEnd+8]
		switch {
		case s.from != nil && bytes.Compare(t, s.from) < 0:
			// Before the range: seek to (subject, from).
			s.seek = append(append(s.seek[:0], k[:subjEnd]...), s.from...)
			ok = s.seekGE(s.seek)
		case s.to != nil && bytes.Compare(t, s.to) >= 0:
			// After the range: seek to the next subject.
			s.seek = prefixSuccessor(s.seek, k[:subjEnd])
			ok = s.seekGE(s.seek)
		default:
			if err := s.emit(k); err != nil {
				return s.unwrap(err)
			}
			ok = s.next()
		}
	}
	if err := s.it.Error(); err != nil {
		return fmt.Errorf("scan events: %w", err)
	}
	return nil
}

func (s *scanner) seekGE(k []byte) bool { s.steps++; return s.it.SeekGE(k) }
func (s *scanner) next() bool           { s.steps++; return s.it.Next() }

// emit decodes the event at the iterator (whose key is k) and calls fn.
func (s *scanner) emit(k []byte) error {
	if s.n++; s.n%ctxCheckEvery == 0 {
		if err := s.ctx.Err(); err != nil {
			return err
		}
	}
	if s.mark != nil && s.mark.skip(k) {
		return nil
	}
	subjEnd := len(k) - suffixLen
	if enc := k[len(s.prefix):subjEnd]; !bytes.Equal(enc, s.subject) {
		subj, _, err := decodeString(enc)
		if err != nil {
			return err
		}
		s.subject = append(s.subject[:0], enc...)
		s.e.Subject = subj
	}
	v, err := s.it.ValueAndErr()
	if err != nil {
		return err
	}
	if err := decodeRecord(v, &s.r); err != nil {
		return fmt.Errorf("%w (key %x)", err, k)
	}
	e := &s.e
	if string(s.r.source) != e.Source { // sources repeat: keep the string
		e.Source = string(s.r.source)
	}
	e.ID = string(s.r.id)
	e.Time = decodeTime(k[subjEnd:])
	e.IngestedAt = time.UnixMicro(s.r.ingestedAt).UTC()
	e.Data = nil
	if len(s.r.data) > 0 {
		e.Data = s.r.data
	}
	if err := s.fn(e); err != nil {
		return errFnStop{err}
	}
	return nil
}

// unwrap returns fn's error as it was, and wraps every other error.
func (s *scanner) unwrap(err error) error {
	var stop errFnStop
	if errors.As(err, &stop) {
		return stop.err
	}
	return fmt.Errorf("scan events: %w", err)
}

// LateWatermark returns the late watermark of (namespace, eventType,
// subject), or the zero time if none was written.
func (l *Log) LateWatermark(ctx context.Context, namespace, eventType, subject string) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	if l.closed.Load() {
		return time.Time{}, fmt.Errorf("read late watermark: %w", errClosed)
	}
	us, ok, err := l.readLate(lateKey(nil, namespace, eventType, subject))
	if err != nil || !ok {
		return time.Time{}, err
	}
	return time.UnixMicro(us).UTC(), nil
}

// readLate reads the late watermark under key (see lateKey), in
// microseconds; ok is false if there is none.
func (l *Log) readLate(key []byte) (us int64, ok bool, err error) {
	v, closer, err := l.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read late watermark: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, errors.New("read late watermark: corrupt value")
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}
