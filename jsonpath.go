package odometer

import (
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
}

type pathSeg struct {
	key   string // gjson-escaped member name, or the decimal index
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
			p.segs = append(p.segs, pathSeg{key: gjson.Escape(name)})
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
				p.segs = append(p.segs, pathSeg{key: gjson.Escape(name)})
			} else if i, err := strconv.Atoi(inner); err == nil && i >= 0 {
				p.segs = append(p.segs, pathSeg{key: strconv.Itoa(i), index: true})
			} else {
				return p, fmt.Errorf("JSONPath %q: unsupported selector [%s] (use a quoted name or an array index)", src, inner)
			}
			rest = rest[end+1:]
		default:
			return p, fmt.Errorf("JSONPath %q: unexpected %q after %q", src, rest[0], src[:len(src)-len(rest)])
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
