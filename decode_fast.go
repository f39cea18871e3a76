package odometer

import (
	"time"
	"unicode/utf8"
)

// decodeFast decodes a request body of the common shape — one event object or
// an array of them, whose CloudEvents attributes are plain strings — in a
// single pass with few allocations. It reports ok=false, and the caller
// falls back to the reference decoder, whenever the body holds anything it
// does not handle: escapes or non-lowercase names among the attributes,
// repeated attributes, invalid JSON, or any event that fails validation (the
// reference decoder then produces the error messages). On every body it
// accepts, it returns exactly what the reference decoder returns
// (FuzzDecodeFast checks this).
func decodeFast(body []byte, ns string, now time.Time, lim IngestLimits) (events []Event, ok bool) {
	d := fastDecoder{b: body}
	d.ws()
	if d.i >= len(d.b) {
		return nil, false
	}
	// All compacted data goes into one arena sized for the worst case, so
	// that sub-slices stay valid: compact JSON is never longer than its input.
	d.arena = make([]byte, 0, len(body))
	var wires []wireEvent
	switch d.b[d.i] {
	case '{':
		w, ok := d.object()
		if !ok {
			return nil, false
		}
		wires = append(wires, w)
	case '[':
		d.i++
		d.ws()
		if d.peek() == ']' {
			return nil, false // empty batch: the reference explains
		}
		wires = make([]wireEvent, 0, len(body)/200+1)
		for {
			d.ws()
			w, ok := d.object()
			if !ok {
				return nil, false
			}
			wires = append(wires, w)
			if lim.MaxEvents > 0 && len(wires) > lim.MaxEvents {
				return nil, false
			}
			d.ws()
			switch d.peek() {
			case ',':
				d.i++
				continue
			case ']':
				d.i++
			default:
				return nil, false
			}
			break
		}
	default:
		return nil, false
	}
	d.ws()
	if d.i != len(d.b) {
		return nil, false
	}
	events = make([]Event, len(wires))
	for i := range wires {
		if fields := finishEvent(&wires[i], true, i, ns, now, lim, &events[i], nil); len(fields) > 0 {
			return nil, false
		}
	}
	return events, true
}

type fastDecoder struct {
	b      []byte
	i      int
	arena  []byte
	depth  int
	spaced bool // ws skipped something since last reset
}

func (d *fastDecoder) peek() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *fastDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
			d.spaced = true
		default:
			return
		}
	}
}

// Attribute bits, to refuse repeated attributes (encoding/json keeps the
// last; the reference decoder decides such cases).
const (
	attrID = 1 << iota
	attrSource
	attrSpecVersion
	attrType
	attrSubject
	attrTime
	attrDataContentType
	attrDataSchema
	attrData
)

// object decodes one event object.
func (d *fastDecoder) object() (w wireEvent, ok bool) {
	if d.peek() != '{' {
		return w, false
	}
	d.i++
	d.ws()
	if d.peek() == '}' {
		d.i++
		return w, true
	}
	seen := 0
	for {
		d.ws()
		key, ok := d.plainString()
		if !ok {
			return w, false
		}
		d.ws()
		if d.peek() != ':' {
			return w, false
		}
		d.i++
		d.ws()
		var bit int
		var dst **string
		switch string(key) { // no allocation: the compiler optimises this
		case "id":
			bit, dst = attrID, &w.ID
		case "source":
			bit, dst = attrSource, &w.Source
		case "specversion":
			bit, dst = attrSpecVersion, &w.SpecVersion
		case "type":
			bit, dst = attrType, &w.Type
		case "subject":
			bit, dst = attrSubject, &w.Subject
		case "datacontenttype":
			bit, dst = attrDataContentType, &w.DataContentType
		case "dataschema":
			bit, dst = attrDataSchema, &w.DataSchema
		case "time":
			bit = attrTime
		case "data":
			bit = attrData
		default:
			// encoding/json matches member names case-insensitively; leave
			// any name that could fold onto an attribute to the reference.
			for _, c := range key {
				if c >= 'A' && c <= 'Z' || c >= 0x80 {
					return w, false
				}
			}
			if !d.value() {
				return w, false
			}
		}
		if bit != 0 {
			if seen&bit != 0 {
				return w, false
			}
			seen |= bit
			switch {
			case dst != nil:
				s, isNull, ok := d.nullOrString()
				if !ok {
					return w, false
				}
				if !isNull {
					str := string(s)
					*dst = &str
				}
			case bit == attrTime:
				start := d.i
				if _, _, ok := d.nullOrString(); !ok {
					return w, false
				}
				w.Time = d.b[start:d.i]
			case bit == attrData:
				start := d.i
				if d.peek() == 'n' {
					if !d.literal("null") {
						return w, false
					}
					break
				}
				if d.peek() != '{' {
					return w, false // the reference says "must be a JSON object"
				}
				d.spaced = false
				if !d.value() || !utf8.Valid(d.b[start:d.i]) {
					return w, false
				}
				w.Data = d.compact(d.b[start:d.i], d.spaced)
			}
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return w, true
		default:
			return w, false
		}
	}
}

// plainString reads a JSON string without escapes or control characters and
// with valid UTF-8, returning its contents (a sub-slice of the input).
func (d *fastDecoder) plainString() ([]byte, bool) {
	if d.peek() != '"' {
		return nil, false
	}
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.b); j++ {
		c := d.b[j]
		switch {
		case c == '"':
			d.i = j + 1
			s := d.b[start:j]
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= 0x80:
			ascii = false
		}
	}
	return nil, false
}

// nullOrString reads null or a plain string (see plainString).
func (d *fastDecoder) nullOrString() (s []byte, isNull, ok bool) {
	if d.peek() == 'n' {
		return nil, true, d.literal("null")
	}
	s, ok = d.plainString()
	return s, false, ok
}

func (d *fastDecoder) literal(lit string) bool {
	if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
		d.i += len(lit)
		return true
	}
	return false
}

// maxDepth bounds nesting; deeper data goes to the reference decoder.
const maxDepth = 1000

// value validates one JSON value. White space skipped inside it sets
// d.spaced.
func (d *fastDecoder) value() bool {
	switch c := d.peek(); {
	case c == '{' || c == '[':
		d.depth++
		if d.depth > maxDepth {
			return false
		}
		defer func() { d.depth-- }()
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		d.i++
		d.ws()
		if d.peek() == end {
			d.i++
			return true
		}
		for {
			d.ws()
			if c == '{' {
				if !d.skipString() {
					return false
				}
				d.ws()
				if d.peek() != ':' {
					return false
				}
				d.i++
				d.ws()
			}
			if !d.value() {
				return false
			}
			d.ws()
			switch d.peek() {
			case ',':
				d.i++
			case end:
				d.i++
				return true
			default:
				return false
			}
		}
	case c == '"':
		return d.skipString()
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	return false
}

// skipString validates a JSON string, escapes included.
func (d *fastDecoder) skipString() bool {
	if d.peek() != '"' {
		return false
	}
	for j := d.i + 1; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			j++
			if j >= len(d.b) {
				return false
			}
			switch d.b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(d.b) {
					return false
				}
				for _, h := range d.b[j+1 : j+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				j += 4
			default:
				return false
			}
		}
	}
	return false
}

// number validates a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *fastDecoder) number() bool {
	j := d.i
	digits := func() bool {
		k := j
		for j < len(d.b) && d.b[j] >= '0' && d.b[j] <= '9' {
			j++
		}
		return j > k
	}
	if j < len(d.b) && d.b[j] == '-' {
		j++
	}
	if j < len(d.b) && d.b[j] == '0' {
		j++
	} else if !digits() {
		return false
	}
	if j < len(d.b) && d.b[j] == '.' {
		j++
		if !digits() {
			return false
		}
	}
	if j < len(d.b) && (d.b[j] == 'e' || d.b[j] == 'E') {
		j++
		if j < len(d.b) && (d.b[j] == '+' || d.b[j] == '-') {
			j++
		}
		if !digits() {
			return false
		}
	}
	d.i = j
	return true
}

// compact returns v without insignificant white space, in the arena. v is
// valid JSON; spaced says whether it has any white space outside strings.
func (d *fastDecoder) compact(v []byte, spaced bool) []byte {
	start := len(d.arena)
	if !spaced {
		d.arena = append(d.arena, v...)
		return d.arena[start:len(d.arena):len(d.arena)]
	}
	inString := false
	for j := 0; j < len(v); j++ {
		c := v[j]
		if inString {
			d.arena = append(d.arena, c)
			switch c {
			case '\\':
				j++
				d.arena = append(d.arena, v[j])
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
		case '"':
			inString = true
			d.arena = append(d.arena, c)
		default:
			d.arena = append(d.arena, c)
		}
	}
	return d.arena[start:len(d.arena):len(d.arena)]
}
