package odometer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is a usage event: a CloudEvents 1.0 JSON object. Its identity is
// (Namespace, Source, ID): the same identity is counted once, forever,
// whatever its other fields say.
type Event struct {
	Namespace       string          `json:"-"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	SpecVersion     string          `json:"specversion"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	DataSchema      string          `json:"dataschema,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
	// IngestedAt is when Odometer received the event (the request's receive
	// time, microsecond precision, UTC).
	IngestedAt time.Time `json:"-"`
}

// Outcome says what happened to one event of an acknowledged batch.
type Outcome uint8

const (
	// Accepted means the event is new and now stored durably.
	Accepted Outcome = iota
	// Duplicate means an event with the same identity was stored before (or
	// earlier in the same batch); this copy was ignored.
	Duplicate
)

func (o Outcome) String() string {
	if o == Duplicate {
		return "duplicate"
	}
	return "accepted"
}

// MarshalText writes "accepted" or "duplicate".
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// TimePrecision is the resolution events are stored with. Both stores keep
// microseconds (PostgreSQL's timestamptz resolution), so event times are
// truncated to it on decoding.
const TimePrecision = time.Microsecond

// Field length limits, in bytes.
const (
	MaxIDLength      = 256
	MaxSourceLength  = 256
	MaxTypeLength    = 256
	MaxSubjectLength = 256
)

// IngestLimits bound what one ingestion request may contain. Zero values
// mean "no limit" for the durations.
type IngestLimits struct {
	// MaxEvents is the most events one request may carry.
	MaxEvents int
	// FutureSkew is how far an event's time may lie ahead of the receive time.
	FutureSkew time.Duration
	// MaxAge is how far an event's time may lie behind the receive time.
	MaxAge time.Duration
}

// wireEvent is the decoding shape. Time and data are raw so that their
// errors can name the field precisely.
type wireEvent struct {
	ID              *string         `json:"id"`
	Source          *string         `json:"source"`
	SpecVersion     *string         `json:"specversion"`
	Type            *string         `json:"type"`
	Subject         *string         `json:"subject"`
	Time            json.RawMessage `json:"time"`
	DataContentType *string         `json:"datacontenttype"`
	DataSchema      *string         `json:"dataschema"`
	Data            json.RawMessage `json:"data"`
}

// DecodeEvents decodes a request body holding one CloudEvent (a JSON object)
// or a batch (a JSON array of them), validates every event and returns them
// with Namespace set to ns and IngestedAt and default times set to now.
//
// The batch is all or nothing: if any event is invalid, DecodeEvents returns
// an EINVALID *Error with one FieldError per problem (index, field, reason)
// and no events.
func DecodeEvents(body []byte, ns string, now time.Time, lim IngestLimits) ([]Event, error) {
	now = now.UTC().Truncate(TimePrecision)
	if events, ok := decodeFast(body, ns, now, lim); ok {
		return events, nil
	}
	return decodeReference(body, ns, now, lim)
}

// decodeReference is the reference decoder, built on encoding/json. It
// handles every input and produces the error messages; decodeFast handles
// the common shape in one pass and must agree with it on every input it
// accepts (FuzzDecodeFast checks that).
func decodeReference(body []byte, ns string, now time.Time, lim IngestLimits) ([]Event, error) {
	body = bytes.TrimLeft(body, " \t\r\n")
	if len(body) == 0 {
		return nil, FieldErrorf("body", "empty request body: expected a CloudEvent object or an array of them")
	}
	var raws []json.RawMessage
	switch body[0] {
	case '{':
		raws = []json.RawMessage{body}
	case '[':
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, FieldErrorf("body", "malformed JSON: %v", err)
		}
		if len(raws) == 0 {
			return nil, FieldErrorf("body", "empty batch: send at least one event")
		}
	default:
		return nil, FieldErrorf("body", "expected a CloudEvent object or an array of them")
	}
	if lim.MaxEvents > 0 && len(raws) > lim.MaxEvents {
		return nil, &Error{Code: ETOOLARGE,
			Message: fmt.Sprintf("batch has %d events; the limit is %d per request", len(raws), lim.MaxEvents),
			Fields:  []FieldError{{Index: -1, Field: "body", Reason: fmt.Sprintf("more than %d events", lim.MaxEvents)}}}
	}
	events := make([]Event, len(raws))
	var fields []FieldError
	for i, raw := range raws {
		fields = decodeEvent(raw, i, ns, now, lim, &events[i], fields)
	}
	if len(fields) > 0 {
		n := map[int]bool{}
		for _, f := range fields {
			n[f.Index] = true
		}
		return nil, &Error{Code: EINVALID,
			Message: fmt.Sprintf("%d of %d events are invalid; nothing was stored", len(n), len(raws)),
			Fields:  fields}
	}
	return events, nil
}

func decodeEvent(raw json.RawMessage, i int, ns string, now time.Time, lim IngestLimits, e *Event, fields []FieldError) []FieldError {
	var w wireEvent
	if err := json.Unmarshal(raw, &w); err != nil {
		// Find which member has the wrong type, to name it.
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return append(fields, FieldError{Index: i, Field: "event", Reason: "not a JSON object"})
		}
		n := len(fields)
		for _, k := range []string{"id", "source", "specversion", "type", "subject", "datacontenttype", "dataschema"} {
			var s *string
			if v, ok := m[k]; ok && json.Unmarshal(v, &s) != nil {
				fields = append(fields, FieldError{Index: i, Field: k, Reason: "must be a string"})
			}
		}
		if len(fields) == n {
			fields = append(fields, FieldError{Index: i, Field: "event", Reason: fmt.Sprintf("malformed: %v", err)})
		}
		return fields
	}
	return finishEvent(&w, false, i, ns, now, lim, e, fields)
}

// finishEvent validates a decoded wire event and fills e. dataCompact says
// that w.Data is already compact JSON.
func finishEvent(w *wireEvent, dataCompact bool, i int, ns string, now time.Time, lim IngestLimits, e *Event, fields []FieldError) []FieldError {
	bad := func(field, format string, args ...any) {
		fields = append(fields, FieldError{Index: i, Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	str := func(field string, p *string, required bool, max int) string {
		if p == nil || *p == "" {
			if required {
				bad(field, "required")
			}
			return ""
		}
		if !utf8.ValidString(*p) {
			bad(field, "not valid UTF-8")
		} else if strings.IndexByte(*p, 0) >= 0 {
			// PostgreSQL's text cannot hold NUL; refusing it everywhere
			// keeps every store able to take every accepted event.
			bad(field, `must not contain the NUL character (\u0000)`)
		} else if max > 0 && len(*p) > max {
			bad(field, "longer than %d bytes", max)
		}
		return *p
	}
	e.Namespace = ns
	e.IngestedAt = now
	e.ID = str("id", w.ID, true, MaxIDLength)
	e.Source = str("source", w.Source, true, MaxSourceLength)
	e.Type = str("type", w.Type, true, MaxTypeLength)
	e.Subject = str("subject", w.Subject, true, MaxSubjectLength)
	e.SpecVersion = "1.0"
	if w.SpecVersion != nil && *w.SpecVersion != "1.0" {
		bad("specversion", "must be \"1.0\", got %q", *w.SpecVersion)
	}
	if w.DataContentType != nil && *w.DataContentType != "" && *w.DataContentType != "application/json" {
		bad("datacontenttype", "only \"application/json\" is supported, got %q", *w.DataContentType)
	} else if w.DataContentType != nil {
		e.DataContentType = *w.DataContentType
	}
	e.DataSchema = str("dataschema", w.DataSchema, false, 2048)

	e.Time = now
	if len(w.Time) > 0 && string(w.Time) != "null" {
		var ts string
		if err := unquote(w.Time, &ts); err != nil {
			bad("time", "must be an RFC 3339 string")
		} else if t, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			bad("time", "not an RFC 3339 timestamp: %q", ts)
		} else {
			t = t.UTC().Truncate(TimePrecision)
			switch {
			case lim.FutureSkew > 0 && t.Sub(now) > lim.FutureSkew:
				bad("time", "%s is more than %s in the future", ts, lim.FutureSkew)
			case lim.MaxAge > 0 && now.Sub(t) > lim.MaxAge:
				bad("time", "%s is older than the maximum age of %s", ts, lim.MaxAge)
			case t.Year() < 1970 || t.Year() > 9999:
				bad("time", "%s is outside the years 1970–9999", ts)
			}
			e.Time = t
		}
	}

	if d := w.Data; len(d) > 0 && string(d) != "null" {
		switch {
		case d[0] != '{':
			bad("data", "must be a JSON object")
		case !utf8.Valid(d):
			// PostgreSQL refuses such JSON; reject it here, with a reason.
			bad("data", "not valid UTF-8")
		case dataCompact:
			e.Data = d
		default:
			var buf bytes.Buffer
			if err := json.Compact(&buf, d); err != nil {
				bad("data", "malformed JSON: %v", err)
			}
			e.Data = buf.Bytes()
		}
	}
	return fields
}

// unquote decodes a JSON string, taking the short way when it has no
// escapes.
func unquote(raw []byte, s *string) error {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		*s = string(raw[1 : len(raw)-1])
		return nil
	}
	return json.Unmarshal(raw, s)
}
