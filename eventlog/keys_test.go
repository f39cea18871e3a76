package eventlog

import (
	"bytes"
	"cmp"
	"math"
	"slices"
	"testing"
	"time"
)

// keyStrings are strings whose encodings are easy to get wrong: empty, NUL
// and 0xFF bytes, the terminator byte, and prefixes of one another.
var keyStrings = []string{
	"", "\x00", "\x00\x00", "\x00\x01", "\x00\xff", "\x01", "\xff", "\xff\x00", "\xff\xff",
	"a", "a\x00", "a\x00\x00", "a\x00\x01", "a\x00b", "a\x01", "a\xff", "ab", "b", "customer-1", "customer-10",
}

func TestStringEncoding(t *testing.T) {
	for _, a := range keyStrings {
		enc := appendString(nil, a)
		got, rest, err := decodeString(append(enc, "rest"...))
		if err != nil || got != a || string(rest) != "rest" {
			t.Errorf("decode(encode(%q)) = %q, rest %q, %v", a, got, rest, err)
		}
		for _, b := range keyStrings {
			encB := appendString(nil, b)
			if got, want := bytes.Compare(enc, encB), cmp.Compare(a, b); got != want {
				t.Errorf("compare(encode(%q), encode(%q)) = %d, want %d", a, b, got, want)
			}
			if a != b && bytes.HasPrefix(encB, enc) {
				t.Errorf("encode(%q) = %x is a prefix of encode(%q) = %x", a, enc, b, encB)
			}
		}
	}
}

func TestDecodeStringCorrupt(t *testing.T) {
	for _, b := range []string{"", "abc", "a\x00", "a\x00\x02", "a\x00\xff"} {
		if _, _, err := decodeString([]byte(b)); err == nil {
			t.Errorf("decodeString(%q) succeeded", b)
		}
	}
}

// FuzzKeyEncoding checks that composite keys of two strings and a time
// round-trip and sort like the tuples they encode.
func FuzzKeyEncoding(f *testing.F) {
	for i, a := range keyStrings {
		b := keyStrings[(i*7+3)%len(keyStrings)]
		f.Add(a, b, int64(i)*1e6, b, a, int64(-i))
	}
	f.Add("x", "", int64(math.MinInt64), "x", "", int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, a1, a2 string, at int64, b1, b2 string, bt int64) {
		ka := key(a1, a2, at)
		kb := key(b1, b2, bt)
		want := cmp.Or(cmp.Compare(a1, b1), cmp.Compare(a2, b2), cmp.Compare(at, bt))
		if got := bytes.Compare(ka, kb); got != want {
			t.Fatalf("compare(key(%q,%q,%d), key(%q,%q,%d)) = %d, want %d", a1, a2, at, b1, b2, bt, got, want)
		}
		s1, rest, err := decodeString(ka)
		if err != nil {
			t.Fatal(err)
		}
		s2, rest, err := decodeString(rest)
		if err != nil {
			t.Fatal(err)
		}
		if s1 != a1 || s2 != a2 || len(rest) != 8 || decodeTime(rest).UnixMicro() != at {
			t.Fatalf("decoded (%q, %q, %x), want (%q, %q, %d)", s1, s2, rest, a1, a2, at)
		}
		// The successor of a prefix bounds exactly the keys with that prefix.
		p := appendString(nil, a1)
		succ := prefixSuccessor(nil, p)
		if inB := bytes.HasPrefix(kb, p); inB != (bytes.Compare(kb, p) >= 0 && bytes.Compare(kb, succ) < 0) {
			t.Fatalf("key(%q, …) has prefix encode(%q): %v, but lies in [prefix, successor): %v", b1, a1, inB, !inB)
		}
	})
}

func key(s1, s2 string, us int64) []byte {
	k := appendString(nil, s1)
	k = appendString(k, s2)
	return appendTime(k, time.UnixMicro(us))
}

func TestTimeEncodingOrder(t *testing.T) {
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), // zero time
		time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Unix(0, 0),
		time.Unix(0, 1000),
		time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
	}
	var keys [][]byte
	for _, tm := range times {
		k := appendTime(nil, tm)
		if got := decodeTime(k); !got.Equal(tm) || got.Location() != time.UTC {
			t.Errorf("decodeTime(appendTime(%v)) = %v", tm, got)
		}
		keys = append(keys, k)
	}
	if !slices.IsSortedFunc(keys, bytes.Compare) {
		t.Errorf("encoded times are not in time order: %x", keys)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	ing := time.Date(2025, 3, 1, 0, 0, 0, 123000, time.UTC)
	v := appendRecord(nil, "src\x00", "id", "1.0", "application/json", "", ing, []byte(`{"a":1}`))
	var r recordView
	if err := decodeRecord(v, &r); err != nil {
		t.Fatal(err)
	}
	if string(r.source) != "src\x00" || string(r.id) != "id" || string(r.specVersion) != "1.0" ||
		string(r.dataContentType) != "application/json" || len(r.dataSchema) != 0 ||
		r.ingestedAt != ing.UnixMicro() || string(r.data) != `{"a":1}` {
		t.Errorf("decoded %+v", r)
	}
	for i := range v {
		_ = decodeRecord(v[:i], &r) // truncated records must not panic
	}
}
