package eventlog

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/odometerhq/odometer"
)

// ListSubjects returns the distinct subjects of f.Namespace's events that
// start with f.Prefix and sort after f.After, in byte order, at most
// f.Limit (which must be positive). It reads one consistent view of the
// log.
//
// Records are keyed 'e' str(ns) str(type) str(subject) time seq, so within
// one type the subjects are in order, each a contiguous run of keys. The
// listing is a skip scan: it finds each type of the namespace by seeking
// past the previous one; in each type it seeks to the first subject at or
// after max(Prefix, After's successor), reads that one key and keeps the
// subject, and seeks past the subject when it needs the type's next one.
// The per-type streams are merged in order, equal subjects of several
// types counted once, and the merge stops at f.Limit. It costs about two
// seeks per type plus one per subject taken from a stream, at most
// types × Limit: never a read of every event.
func (l *Log) ListSubjects(ctx context.Context, f odometer.SubjectFilter) ([]string, error) {
	if f.Limit <= 0 {
		return nil, odometer.FieldErrorf("limit", "must be positive, got %d", f.Limit)
	}
	if l.closed.Load() {
		return nil, fmt.Errorf("list subjects: %w", errClosed)
	}
	subjects, _, err := l.listSubjects(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list subjects: %w", err)
	}
	return subjects, nil
}

// listSubjects is ListSubjects; it also returns how many seeks it made, for
// the tests of the skip scan.
func (l *Log) listSubjects(ctx context.Context, f odometer.SubjectFilter) (subjects []string, seeks int, err error) {
	nsPrefix := append([]byte{tagEvent}, appendString(nil, f.Namespace)...)
	it, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: nsPrefix,
		UpperBound: prefixSuccessor(nil, nsPrefix),
	})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	seek := func(k []byte) (bool, error) {
		if seeks++; seeks%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return false, err
			}
		}
		if it.SeekGE(k) {
			return true, nil
		}
		return false, it.Error()
	}

	// A subject starts with Prefix exactly when its encoding starts with
	// Prefix's encoding without the terminator (keys.go: the encoding is
	// order-preserving and escapes whole bytes).
	escPrefix := appendString(nil, f.Prefix)
	escPrefix = escPrefix[:len(escPrefix)-2]
	var encAfter []byte
	if f.After != "" {
		encAfter = appendString(nil, f.After)
	}

	var (
		streams     subjectHeap
		buf, target []byte
	)
	found, err := seek(nsPrefix)
	for found {
		k := it.Key()
		n, err := stringLen(k[len(nsPrefix):])
		if err != nil {
			return nil, seeks, err
		}
		s := &subjectStream{base: bytes.Clone(k[:len(nsPrefix)+n])} // 'e' str(ns) str(type)
		// The stream's range: [base+escPrefix, its prefix successor),
		// starting after After's keys when that is further.
		from := append(bytes.Clone(s.base), escPrefix...)
		s.upper = prefixSuccessor(nil, from)
		if encAfter != nil {
			buf = append(append(buf[:0], s.base...), encAfter...)
			if past := prefixSuccessor(nil, buf); bytes.Compare(past, from) > 0 {
				from = past
			}
		}
		ok, err := seek(from)
		if err == nil {
			ok, err = s.take(it, ok)
		}
		if err != nil {
			return nil, seeks, err
		}
		if ok {
			streams = append(streams, s)
		}
		// The next type: past every key of this one.
		target = prefixSuccessor(target, s.base)
		if found, err = seek(target); err != nil {
			return nil, seeks, err
		}
	}
	if err != nil {
		return nil, seeks, err
	}

	heap.Init(&streams)
	subjects = []string{}
	var last []byte // the encoding of subjects' last element
	for len(streams) > 0 && len(subjects) < f.Limit {
		s := streams[0]
		if !bytes.Equal(s.head, last) {
			subj, _, err := decodeString(s.head)
			if err != nil {
				return nil, seeks, err
			}
			subjects = append(subjects, subj)
			last = append(last[:0], s.head...)
		}
		// Past every key of the head subject in this type.
		buf = append(append(buf[:0], s.base...), s.head...)
		target = prefixSuccessor(target, buf)
		ok, err := seek(target)
		if err == nil {
			ok, err = s.take(it, ok)
		}
		if err != nil {
			return nil, seeks, err
		}
		if ok {
			heap.Fix(&streams, 0)
		} else {
			heap.Pop(&streams)
		}
	}
	return subjects, seeks, nil
}

// subjectStream is one event type's subjects in order, read one at a time.
type subjectStream struct {
	base  []byte // 'e' str(ns) str(type): the type's key prefix
	upper []byte // the stream's keys are below it; nil: unbounded
	head  []byte // the encoded subject at the front, terminator included
}

// take makes the subject of the key at it the stream's head; found says
// whether it is positioned at all. It reports whether that key is in the
// stream's range.
func (s *subjectStream) take(it *pebble.Iterator, found bool) (bool, error) {
	if !found {
		return false, nil
	}
	k := it.Key()
	if s.upper != nil && bytes.Compare(k, s.upper) >= 0 {
		return false, nil
	}
	n, err := stringLen(k[len(s.base):])
	if err != nil {
		return false, err
	}
	s.head = append(s.head[:0], k[len(s.base):len(s.base)+n]...)
	return true, nil
}

// subjectHeap orders streams by their heads (encodings preserve order).
type subjectHeap []*subjectStream

func (h subjectHeap) Len() int           { return len(h) }
func (h subjectHeap) Less(i, j int) bool { return bytes.Compare(h[i].head, h[j].head) < 0 }
func (h subjectHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *subjectHeap) Push(x any)        { *h = append(*h, x.(*subjectStream)) }
func (h *subjectHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}
