package eventlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/odometerhq/odometer"
)

// maxLookupSources is how many distinct sources a namespace may have for
// LookupEvents to probe each of them when no source is given.
const maxLookupSources = 100_000

// LookupEvents returns the stored events of namespace with exactly this id,
// and this source unless source is "": at most one per source, ordered by
// source. It never reads every event.
//
// An identity's 'd' key holds the time and seq of its event (keys.go), so a
// located identity costs three point reads: 'd', then the 't' entry for
// the event's type and subject, then the 'e' record. Without a source, the
// 'd' keys of the namespace, ordered by (source, id), are skip-scanned:
// seek to the namespace's first key, take its source, seek to (source, id),
// then seek past the source: about two seeks per distinct source. A
// namespace with more than 100,000 distinct sources is refused with
// EINVALID naming field "source".
//
// An identity stored before 'd' keys held a location (an empty value) is
// found by reading the namespace's 't' index newest first, and the record
// of each entry, until its event turns up: the identity exists, so this
// ends, but it costs a read of every event of the namespace newer than the
// one sought. Only events stored by a version of Odometer before the
// located 'd' keys pay it.
func (l *Log) LookupEvents(ctx context.Context, namespace, id, source string) ([]odometer.Event, error) {
	if l.closed.Load() {
		return nil, fmt.Errorf("look up events: %w", errClosed)
	}
	events, _, err := l.lookup(ctx, namespace, id, source, maxLookupSources)
	if err != nil {
		return nil, fmt.Errorf("look up events: %w", err)
	}
	return events, nil
}

// lookupStats is what a lookup cost, for the tests.
type lookupStats struct {
	seeks   int // iterator seeks over 'd' keys
	scanned int // 't' entries read by the fallback search
}

// identityAt is a stored identity of the looked-up id: its source and
// the value of its 'd' key, the event's time and seq (nil when unknown).
type identityAt struct {
	source string
	at     []byte
}

// lookup is LookupEvents with the bound on sources as a parameter; it
// also returns what the lookup cost.
//
// The reads need no snapshot: an identity's 'd' key and the event's 't'
// and 'e' keys are written in one atomic batch and never deleted or
// rewritten, so every key a 'd' key leads to is there once it is.
func (l *Log) lookup(ctx context.Context, ns, id, source string, maxSources int) ([]odometer.Event, lookupStats, error) {
	var (
		st    lookupStats
		found []identityAt
		err   error
	)
	if err := ctx.Err(); err != nil {
		return nil, st, err
	}
	if source != "" {
		v, closer, err := l.db.Get(dedupKey(nil, ns, source, id))
		if errors.Is(err, pebble.ErrNotFound) {
			return []odometer.Event{}, st, nil
		}
		if err != nil {
			return nil, st, err
		}
		found = append(found, identityAt{source: source, at: bytes.Clone(v)})
		closer.Close()
	} else if found, err = l.identities(ctx, ns, id, maxSources, &st); err != nil {
		return nil, st, err
	}

	events := make([]odometer.Event, len(found))
	var unknown []int // indexes into found of the identities without a location
	for i, f := range found {
		if len(f.at) == 0 {
			unknown = append(unknown, i)
			continue
		}
		if len(f.at) != suffixLen {
			return nil, st, fmt.Errorf("dedup key of source %q, id %q: corrupt value %x", f.source, id, f.at)
		}
		if events[i], err = l.eventAt(ns, f.at); err != nil {
			return nil, st, fmt.Errorf("event of source %q, id %q: %w", f.source, id, err)
		}
		if events[i].Source != f.source || events[i].ID != id {
			return nil, st, fmt.Errorf("dedup key of source %q, id %q: located event is of source %q, id %q",
				f.source, id, events[i].Source, events[i].ID)
		}
	}
	if len(unknown) > 0 {
		if err := l.search(ctx, ns, id, found, unknown, events, &st); err != nil {
			return nil, st, err
		}
	}
	return events, st, nil
}

// identities returns the stored identities of namespace ns with this id,
// one per source, in source order: a skip scan of the namespace's 'd'
// keys, one probe per distinct source. More than maxSources distinct
// sources is an EINVALID error about field "source".
func (l *Log) identities(ctx context.Context, ns, id string, maxSources int, st *lookupStats) ([]identityAt, error) {
	prefix := append([]byte{tagDedup}, appendString(nil, ns)...)
	it, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: prefix,
		UpperBound: prefixSuccessor(nil, prefix),
	})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var ctxErr error
	seek := func(k []byte) bool {
		if st.seeks++; st.seeks%ctxCheckEvery == 0 {
			if ctxErr = ctx.Err(); ctxErr != nil {
				return false
			}
		}
		return it.SeekGE(k)
	}
	encID := appendString(nil, id)
	var (
		found        []identityAt
		base, target []byte // 'd' str(ns) str(source) of the current source; a seek key
	)
	ok := seek(prefix)
	for sources := 1; ok; sources++ {
		if sources > maxSources {
			return nil, odometer.FieldErrorf("source",
				"required for this namespace: it has more than %d distinct sources, too many to look an id up in each", maxSources)
		}
		// it is at the first key of a source.
		k := it.Key()
		n, err := stringLen(k[len(prefix):])
		if err != nil {
			return nil, fmt.Errorf("dedup key %x: %w", k, err)
		}
		base = append(base[:0], k[:len(prefix)+n]...)
		target = append(append(target[:0], base...), encID...)
		if bytes.Compare(k, target) < 0 { // else k is target, or the source has no such id
			ok = seek(target)
		}
		if ok && bytes.Equal(it.Key(), target) {
			src, _, err := decodeString(base[len(prefix):])
			if err != nil {
				return nil, err
			}
			v, err := it.ValueAndErr()
			if err != nil {
				return nil, err
			}
			found = append(found, identityAt{source: src, at: bytes.Clone(v)})
		}
		// The next source: the probe may have landed on it already.
		if ok && bytes.HasPrefix(it.Key(), base) {
			target = prefixSuccessor(target, base)
			ok = seek(target)
		}
	}
	if ctxErr != nil {
		return nil, ctxErr
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	return found, nil
}

// eventAt reads the event of namespace ns whose keys end with at (time,
// seq): its 't' entry names the type and subject, which complete the key
// of its record.
func (l *Log) eventAt(ns string, at []byte) (odometer.Event, error) {
	key := append(timePrefix(nil, ns), at...)
	mid, closer, err := l.db.Get(key)
	if err != nil {
		// Written in the batch of the 'd' key that led here.
		return odometer.Event{}, fmt.Errorf("index entry %x: %w", key, err)
	}
	defer closer.Close()
	typ, rest, err := decodeString(mid)
	if err != nil {
		return odometer.Event{}, err
	}
	subject, _, err := decodeString(rest)
	if err != nil {
		return odometer.Event{}, err
	}
	key = append(append(append(key[:0], tagEvent), appendString(nil, ns)...), mid...)
	key = append(key, at...)
	return l.recordAt(key, ns, typ, subject, at)
}

// recordAt reads and decodes the record under key, whose namespace, type,
// subject and suffix (time, seq) are given.
func (l *Log) recordAt(key []byte, ns, typ, subject string, suffix []byte) (odometer.Event, error) {
	v, closer, err := l.db.Get(key)
	if err != nil {
		return odometer.Event{}, fmt.Errorf("record %x: %w", key, err)
	}
	defer closer.Close()
	var r recordView
	if err := decodeRecord(v, &r); err != nil {
		return odometer.Event{}, fmt.Errorf("%w (key %x)", err, key)
	}
	return r.event(ns, typ, subject, suffix), nil
}

// search finds the events of the identities found[i] for i in unknown,
// whose 'd' keys do not say where they are, by reading namespace ns's 't'
// index newest first and the record of every entry until each has turned
// up, and stores them in events[i]. Each identity exists, so the search
// ends; one that the whole index does not hold is corruption.
func (l *Log) search(ctx context.Context, ns, id string, found []identityAt, unknown []int, events []odometer.Event, st *lookupStats) error {
	want := make(map[string]int, len(unknown)) // source → index into events
	for _, i := range unknown {
		want[found[i].source] = i
	}
	prefix := timePrefix(nil, ns)
	it, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixSuccessor(nil, prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	var (
		r      recordView
		recKey []byte
	)
	for ok := it.Last(); ok && len(want) > 0; ok = it.Prev() {
		if st.scanned++; st.scanned%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		k, mid := it.Key(), it.Value() // mid: str(type) str(subject)
		if len(k) != len(prefix)+suffixLen {
			return errCorruptKey
		}
		suffix := k[len(prefix):]
		recKey = append(append(append(recKey[:0], tagEvent), prefix[1:]...), mid...)
		recKey = append(recKey, suffix...)
		v, closer, err := l.db.Get(recKey)
		if err != nil {
			return fmt.Errorf("record of index entry %x: %w", k, err)
		}
		err = decodeRecord(v, &r)
		i, match := want[string(r.source)]
		if err == nil && match && string(r.id) == id {
			var typ, subject string
			var rest []byte
			if typ, rest, err = decodeString(mid); err == nil {
				subject, _, err = decodeString(rest)
			}
			if err == nil {
				events[i] = r.event(ns, typ, subject, suffix)
				delete(want, events[i].Source)
			}
		}
		closer.Close()
		if err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if len(want) > 0 {
		return fmt.Errorf("id %q: %d identities have a dedup key but no event", id, len(want))
	}
	return nil
}
