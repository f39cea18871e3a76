package eventlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The key space. Every key starts with a one-byte tag, so each kind of key
// lives in its own contiguous range and an sstable of one kind never has to
// be consulted for another: a dedup Get touches only tables that overlap the
// 'd' range.
//
//	'd' str(ns) str(source) str(id)                       → time(t) u64(seq), or "" (dedup: the identity exists)
//	'e' str(ns) str(type) str(subject) time(t) u64(seq)   → record (the event)
//	't' str(ns) time(t) u64(seq)                          → str(type) str(subject) (ListEvents)
//	'l' str(ns) str(type) str(subject)                    → u64(at) (late watermark)
//	'm' name                                              → metadata (format, last seq, last rollup id)
//	'R' u64(id)                                           → rollup definition (rollup.go)
//	'r' u64(id) …                                         → rollup cell (rollup.go)
//
// str(s) is an order-preserving, prefix-free encoding of a string (see
// appendString); time(t) is the event time in microseconds with the sign bit
// flipped, big-endian, so that byte order is time order; u64 is big-endian.
// Every 'e' and 't' key therefore ends with 16 fixed bytes, time then seq.
// A late watermark (odometer.LateMarks) is the time in microseconds since
// the Unix epoch, as a big-endian two's-complement int64.
//
// The value of a 'd' key locates the event: the 16 bytes (time, seq) that
// end its 't' and 'e' keys, so that LookupEvents finds an identity's event
// with three point reads ('d', then 't' for the type and subject, then 'e').
// Logs written before this value existed hold "" instead, and so do keys
// written by such an older binary after a downgrade: the location is then
// unknown and LookupEvents falls back to searching the namespace's 't'
// index (lookup.go). That is why the value needed no new formatVersion: no
// version ever read a 'd' value (dedup and the identity filter read keys
// only), so older binaries read a log with located 'd' keys correctly, and
// this one reads both kinds of value. Raising formatVersion would have
// made the upgrade one-way for nothing.
const (
	tagDedup = 'd'
	tagEvent = 'e'
	tagLate  = 'l'
	tagMeta  = 'm'
	tagTime  = 't'

	tagRollup    = 'r'
	tagRollupDef = 'R'
)

var (
	keyFormat = []byte{tagMeta, 'f', 'o', 'r', 'm', 'a', 't'}
	keySeq    = []byte{tagMeta, 's', 'e', 'q'}
)

// suffixLen is the length of the time and seq that end every 'e' and 't'
// key, and of a located 'd' key's value.
const suffixLen = 16

// String encoding: each 0x00 byte becomes 0x00 0xFF and the string ends with
// 0x00 0x01. This keeps byte order equal to string order (the terminator
// sorts below any escaped or ordinary byte that may follow a prefix), and no
// encoded string is a prefix of another, so a key prefix that ends with an
// encoded string selects exactly the keys with that string in that position.
const (
	escape     = 0x00
	escaped00  = 0xFF
	terminator = 0x01
)

var errCorruptKey = errors.New("corrupt key")

// appendString appends the encoding of s to dst.
func appendString(dst []byte, s string) []byte {
	for {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			break
		}
		dst = append(dst, s[:i]...)
		dst = append(dst, escape, escaped00)
		s = s[i+1:]
	}
	dst = append(dst, s...)
	return append(dst, escape, terminator)
}

// stringLen returns the length of the encoded string that b starts with,
// terminator included.
func stringLen(b []byte) (int, error) {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], escape)
		if j < 0 || i+j+1 >= len(b) {
			return 0, errCorruptKey
		}
		i += j + 1
		switch b[i] {
		case terminator:
			return i + 1, nil
		case escaped00:
			i++
		default:
			return 0, errCorruptKey
		}
	}
}

// appendDecodedString appends to dst the string whose encoding b starts
// with and returns the rest of b.
func appendDecodedString(dst, b []byte) (out, rest []byte, err error) {
	n, err := stringLen(b)
	if err != nil {
		return dst, nil, err
	}
	enc := b[:n-2] // without the terminator
	for {
		i := bytes.IndexByte(enc, escape)
		if i < 0 {
			break
		}
		dst = append(dst, enc[:i]...)
		dst = append(dst, 0)
		enc = enc[i+2:]
	}
	return append(dst, enc...), b[n:], nil
}

// decodeString returns the string whose encoding b starts with and the rest
// of b.
func decodeString(b []byte) (string, []byte, error) {
	n, err := stringLen(b)
	if err != nil {
		return "", nil, err
	}
	if bytes.IndexByte(b[:n-2], escape) < 0 {
		return string(b[:n-2]), b[n:], nil // the common case: no NUL bytes
	}
	s, rest, err := appendDecodedString(make([]byte, 0, n-2), b)
	return string(s), rest, err
}

// appendTime appends t in microseconds, sign bit flipped, big-endian: byte
// order is time order for every int64, so even times before 1970, which
// decoding never produces, would sort correctly.
func appendTime(dst []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(t.UnixMicro())^(1<<63))
}

func decodeTime(b []byte) time.Time {
	return time.UnixMicro(int64(binary.BigEndian.Uint64(b) ^ (1 << 63))).UTC()
}

// prefixSuccessor returns the smallest key greater than every key that
// starts with p, written into dst. Encoded strings never end with 0xFF, so
// incrementing the last byte suffices for the prefixes used here; the loop
// handles the general case anyway.
func prefixSuccessor(dst, p []byte) []byte {
	dst = append(dst[:0], p...)
	for i := len(dst) - 1; i >= 0; i-- {
		if dst[i] != 0xFF {
			dst[i]++
			return dst[:i+1]
		}
	}
	return nil // p is all 0xFF: no upper bound
}

// timeBounds returns the iterator bounds of the keys that start with
// prefix followed by a time in [from, to); a zero time leaves its side
// open.
func timeBounds(prefix []byte, from, to time.Time) (lower, upper []byte) {
	lower, upper = prefix, prefixSuccessor(nil, prefix)
	if !from.IsZero() {
		lower = appendTime(slices.Clip(prefix), from)
	}
	if !to.IsZero() {
		upper = appendTime(slices.Clip(prefix), to)
	}
	return lower, upper
}

func dedupKey(dst []byte, ns, source, id string) []byte {
	dst = append(dst, tagDedup)
	dst = appendString(dst, ns)
	dst = appendString(dst, source)
	return appendString(dst, id)
}

// lateKey returns 'l' str(ns) str(typ) str(subject): the key of a late
// watermark.
func lateKey(dst []byte, ns, typ, subject string) []byte {
	dst = append(dst, tagLate)
	dst = appendString(dst, ns)
	dst = appendString(dst, typ)
	return appendString(dst, subject)
}

// eventPrefix returns 'e' str(ns) str(typ): the prefix of the records a
// meter reads.
func eventPrefix(dst []byte, ns, typ string) []byte {
	dst = append(dst, tagEvent)
	dst = appendString(dst, ns)
	return appendString(dst, typ)
}

func timePrefix(dst []byte, ns string) []byte {
	dst = append(dst, tagTime)
	return appendString(dst, ns)
}

// record is the value stored under an 'e' key: what the key does not hold.
// Layout: a version byte (recordV1), then source, id, specversion,
// datacontenttype and dataschema as uvarint-length-prefixed bytes, the
// ingestion time as a varint of microseconds, and the data to the end (empty
// for an event without data).
const recordV1 = 1

func appendRecord(dst []byte, source, id, specVersion, dataContentType, dataSchema string, ingestedAt time.Time, data []byte) []byte {
	dst = append(dst, recordV1)
	for _, s := range [...]string{source, id, specVersion, dataContentType, dataSchema} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	dst = binary.AppendVarint(dst, ingestedAt.UnixMicro())
	return append(dst, data...)
}

// recordView is a decoded record whose byte slices point into the value.
type recordView struct {
	source, id, specVersion, dataContentType, dataSchema []byte
	ingestedAt                                           int64 // microseconds
	data                                                 []byte
}

func decodeRecord(v []byte, r *recordView) error {
	if len(v) == 0 || v[0] != recordV1 {
		return fmt.Errorf("corrupt record: unknown version")
	}
	v = v[1:]
	for _, p := range [...]*[]byte{&r.source, &r.id, &r.specVersion, &r.dataContentType, &r.dataSchema} {
		n, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < n {
			return fmt.Errorf("corrupt record: bad field length")
		}
		*p = v[k : k+int(n)]
		v = v[k+int(n):]
	}
	us, k := binary.Varint(v)
	if k <= 0 {
		return fmt.Errorf("corrupt record: bad ingestion time")
	}
	r.ingestedAt = us
	r.data = v[k:]
	return nil
}
