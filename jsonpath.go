package odometer

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Path is a compiled JSONPath into an event's data. Odometer supports the
// subset that meters need: the root `$` followed by member names (`.name`,
// `['name']`, `["name"]`) and array indexes (`[0]`). Wildcards, filters and
// recursive descent are rejected because a meter must extract one value per
// event.
type Path struct {
	src  string
	segs []pathSeg
	// plain says that find can follow the path: every member name is
	// non-empty and needs no escaping in a gjson path.
	plain bool
}

type pathSeg struct {
	key   string // gjson-escaped member name, or the decimal index
	name  string // the member name as written
	n     int    // the index, for array segments
	index bool
}

// CompilePath parses a JSONPath such as `$.tokens` or `$.usage['input tokens']`.
func CompilePath(src string) (Path, error) {
	p := Path{src: src}
	if !strings.HasPrefix(src, "$") {
		return p, fmt.Errorf("JSONPath %q must start with $", src)
	}
	rest := src[1:]
	if rest == "" {
		return p, fmt.Errorf("JSONPath %q selects the whole data object, not a value", src)
	}
	for rest != "" {
		switch rest[0] {
		case '.':
			rest = rest[1:]
			n := strings.IndexAny(rest, ".[")
			if n < 0 {
				n = len(rest)
			}
			name := rest[:n]
			if name == "" || name == "*" || strings.ContainsAny(name, "]'\"()?@ ") {
				return p, fmt.Errorf("JSONPath %q: bad member name %q (quote it as ['…'] or use a plain name)", src, name)
			}
			p.segs = append(p.segs, pathSeg{key: gjson.Escape(name), name: name})
			rest = rest[n:]
		case '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return p, fmt.Errorf("JSONPath %q: missing ]", src)
			}
			inner := rest[1:end]
			if len(inner) >= 2 && (inner[0] == '\'' || inner[0] == '"') && inner[len(inner)-1] == inner[0] {
				name := inner[1 : len(inner)-1]
				if strings.ContainsRune(name, rune(inner[0])) {
					return p, fmt.Errorf("JSONPath %q: quotes inside a quoted name are not supported", src)
				}
				p.segs = append(p.segs, pathSeg{key: gjson.Escape(name), name: name})
			} else if i, err := strconv.Atoi(inner); err == nil && i >= 0 {
				p.segs = append(p.segs, pathSeg{key: strconv.Itoa(i), n: i, index: true})
			} else {
				return p, fmt.Errorf("JSONPath %q: unsupported selector [%s] (use a quoted name or an array index)", src, inner)
			}
			rest = rest[end+1:]
		default:
			return p, fmt.Errorf("JSONPath %q: unexpected %q after %q", src, rest[0], src[:len(src)-len(rest)])
		}
	}
	p.plain = true
	for _, s := range p.segs {
		if !s.index && (s.name == "" || s.key != s.name) {
			p.plain = false
		}
	}
	return p, nil
}

// String returns the path as written.
func (p Path) String() string { return p.src }

// lookup returns the JSON value at p in data, which must be a JSON object.
func (p Path) lookup(data []byte) gjson.Result {
	if len(p.segs) == 0 || len(data) == 0 {
		return gjson.Result{}
	}
	r := gjson.ParseBytes(data)
	for _, s := range p.segs {
		if s.index != r.IsArray() || !(r.IsArray() || r.IsObject()) {
			return gjson.Result{}
		}
		r = r.Get(s.key)
		if !r.Exists() {
			return r
		}
	}
	return r
}

// Value extracts a decimal at p: a JSON number or a string holding a decimal,
// within the value limits. ok is false when the path is missing or null.
func (p Path) Value(data []byte) (v Decimal, ok bool, err error) {
	// Usage queries call Value for every event, so the common case — a
	// plain number or decimal string — is read without gjson and without
	// allocating; everything else takes the general path below.
	if raw, found := p.find(data); found {
		switch {
		case raw == nil || string(raw) == "null":
			return Decimal{}, false, nil
		case raw[0] == '"':
			if v, ok := parsePlainValue(raw[1 : len(raw)-1]); ok {
				return v, true, nil
			}
		default:
			if v, ok := parsePlainValue(raw); ok {
				return v, true, nil
			}
		}
	}
	return p.value(data)
}

// value is Value by gjson.
func (p Path) value(data []byte) (v Decimal, ok bool, err error) {
	r := p.lookup(data)
	switch r.Type {
	case gjson.Null:
		return Decimal{}, false, nil
	case gjson.Number:
		v, err = ParseValue(r.Raw)
	case gjson.String:
		v, err = ParseValue(r.Str)
	default:
		return Decimal{}, false, fmt.Errorf("%s is %s, not a number", p.src, kindOf(r))
	}
	if err != nil {
		return Decimal{}, false, err
	}
	return v, true, nil
}

// Text extracts a scalar at p as text: strings as they are, numbers in
// canonical decimal form, booleans as true/false, objects and arrays as
// compact JSON. ok is false when the path is missing or null.
func (p Path) Text(data []byte) (s string, ok bool) {
	if text, ok, done := p.plainText(data); done {
		return string(text), ok
	}
	return p.text(data)
}

// AppendText appends Text(data) to dst without allocating in the common
// case (a string without escapes), for group keys.
func (p Path) AppendText(dst, data []byte) ([]byte, bool) {
	if text, ok, done := p.plainText(data); done {
		return append(dst, text...), ok
	}
	s, ok := p.text(data)
	return append(dst, s...), ok
}

// plainText is Text for a missing value, null, and strings without escapes
// (the text is then a sub-slice of data); done is false for every other
// value.
func (p Path) plainText(data []byte) (text []byte, ok, done bool) {
	raw, found := p.find(data)
	switch {
	case !found:
		return nil, false, false
	case raw == nil || string(raw) == "null":
		return nil, false, true
	case raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0:
		return raw[1 : len(raw)-1], true, true
	}
	return nil, false, false
}

// text is Text by gjson.
func (p Path) text(data []byte) (s string, ok bool) {
	r := p.lookup(data)
	switch r.Type {
	case gjson.Null:
		return "", false
	case gjson.String:
		return r.Str, true
	case gjson.Number:
		if d, err := ParseDecimal(r.Raw); err == nil {
			return d.String(), true
		}
		return r.Raw, true
	default:
		return r.Raw, true
	}
}

func kindOf(r gjson.Result) string {
	switch {
	case r.IsObject():
		return "an object"
	case r.IsArray():
		return "an array"
	case r.Type == gjson.True || r.Type == gjson.False:
		return "a boolean"
	}
	return "not a scalar"
}

// find returns the raw JSON of the value at p in data, or nil if there is
// none, as lookup would find it: the first member of that name, the index-th
// element. It reads data once, does not allocate, and assumes valid JSON,
// which is all the stores hold (they refuse anything else). found is false
// when find cannot tell the way gjson would: p is not plain, a member name
// on the way has escapes (gjson compares names unescaped), or data is not
// valid JSON after all. FuzzPathFind checks find against lookup.
func (p Path) find(data []byte) (raw []byte, found bool) {
	if !p.plain {
		return nil, false
	}
	i := skipSpace(data, 0)
	for _, s := range p.segs {
		if i >= len(data) {
			return nil, true
		}
		var ok bool
		if s.index {
			if data[i] != '[' {
				return nil, true
			}
			i, ok = arrayElem(data, i, s.n)
		} else {
			if data[i] != '{' {
				return nil, true
			}
			i, ok = member(data, i, s.name)
		}
		if !ok {
			return nil, false
		}
		if i < 0 {
			return nil, true
		}
	}
	end := skipValue(data, i)
	if end <= i {
		return nil, false
	}
	return data[i:end], true
}

// member returns the start of the value of the first member called name of
// the object at data[i], -1 if it has none, and ok=false if the object has
// escaped names before it or is not valid JSON.
func member(data []byte, i int, name string) (start int, ok bool) {
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return -1, true
	}
	for i < len(data) && data[i] == '"' {
		k := i + 1
		end := k
		for end < len(data) && data[end] != '"' && data[end] != '\\' {
			end++
		}
		if end >= len(data) || data[end] != '"' {
			return 0, false // an escaped name, or the end of data
		}
		i = skipSpace(data, end+1)
		if i >= len(data) || data[i] != ':' {
			return 0, false
		}
		i = skipSpace(data, i+1)
		if string(data[k:end]) == name {
			return i, true
		}
		next, last, ok := afterValue(data, i, '}')
		switch {
		case !ok:
			return 0, false
		case last:
			return -1, true
		}
		i = next
	}
	return 0, false
}

// arrayElem returns the start of element n of the array at data[i], -1 if
// it is shorter, and ok=false if it is not valid JSON.
func arrayElem(data []byte, i, n int) (start int, ok bool) {
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return -1, true
	}
	for e := 0; i < len(data); e++ {
		if e == n {
			return i, true
		}
		next, last, ok := afterValue(data, i, ']')
		switch {
		case !ok:
			return 0, false
		case last:
			return -1, true
		}
		i = next
	}
	return 0, false
}

// afterValue skips the value at data[i] and what follows it in its object
// or array: it returns the start of the next member or element, or
// last=true at the closing bracket, and ok=false if data is not valid JSON
// there.
func afterValue(data []byte, i int, closer byte) (next int, last, ok bool) {
	if i = skipValue(data, i); i < 0 {
		return 0, false, false
	}
	i = skipSpace(data, i)
	switch {
	case i >= len(data):
		return 0, false, false
	case data[i] == closer:
		return 0, true, true
	case data[i] == ',':
		return skipSpace(data, i+1), false, true
	}
	return 0, false, false
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value that starts at data[i], or -1
// if there is none. Strings are skipped escapes and all, objects and arrays
// by counting brackets outside strings; a scalar ends at the next
// delimiter.
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				if i = skipString(data, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	case ',', ':', '}', ']':
		return -1
	}
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r', ',', '}', ']':
			return i
		}
		i++
	}
	return i
}

// skipString returns the end of the JSON string that starts at data[i], or
// -1 if it does not end.
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}
