package api

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/odometerhq/odometer"
)

// readBody reads the request body, decompressing it when Content-Encoding
// is gzip, and fails with ETOOLARGE when it exceeds the limit before or
// after decompression. The bytes it returns count against the server's
// body budget until the request ends; when they do not fit, it fails with
// EUNAVAILABLE (503, retry). A body that stops arriving for the body
// timeout is cut (408).
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := h.limits.MaxBodyBytes
	tooLarge := func() error {
		return &odometer.Error{Code: odometer.ETOOLARGE,
			Message: fmt.Sprintf("request body exceeds the limit of %d bytes (after decompression)", limit),
			Fields:  []odometer.FieldError{{Index: -1, Field: "body", Reason: fmt.Sprintf("larger than %d bytes", limit)}}}
	}
	if r.ContentLength > limit {
		return nil, tooLarge()
	}
	src := &progressReader{r: r.Body, rc: http.NewResponseController(w), stall: h.bodyTimeout, end: time.Now().Add(maxBodyTime)}
	var body io.Reader = http.MaxBytesReader(w, io.NopCloser(src), limit)
	gzipped := false
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			if errors.As(err, new(*http.MaxBytesError)) {
				return nil, tooLarge()
			}
			if se := (*statusError)(nil); errors.As(err, &se) {
				return nil, se
			}
			return nil, odometer.FieldErrorf("body", "Content-Encoding is gzip but the body is not gzip data: %v", err)
		}
		defer zr.Close()
		body, gzipped = zr, true
	default:
		return nil, errUnsupportedMediaType("Content-Encoding %q is not supported; use gzip or none", enc)
	}
	size := int64(-1) // the decompressed size, when known
	if !gzipped && r.ContentLength >= 0 {
		size = r.ContentLength
	}
	b, err := h.readBudgeted(body, limit, size, stateOf(r))
	var se *statusError
	switch {
	case errors.As(err, new(*http.MaxBytesError)):
		return nil, tooLarge()
	case errors.As(err, &se):
		return nil, se
	case odometer.ErrorCode(err) == odometer.EUNAVAILABLE:
		return nil, err
	case err != nil && gzipped:
		return nil, odometer.FieldErrorf("body", "corrupt gzip data: %v", err)
	case err != nil:
		return nil, fmt.Errorf("read request body: %w", err)
	case int64(len(b)) > limit:
		return nil, tooLarge()
	}
	return b, nil
}

// readBudgeted reads r to its end, or to limit+1 bytes, into a buffer
// whose capacity it takes from the body budget first (charged to st, and
// given back when the request ends). size is the length when known, -1
// otherwise; the buffer then starts small and doubles.
func (h *handler) readBudgeted(r io.Reader, limit, size int64, st *requestState) ([]byte, error) {
	grow := func(buf []byte, n int64) ([]byte, error) {
		extra := n - int64(cap(buf))
		if !h.bodies.take(extra) {
			return nil, h.bodies.errBusy()
		}
		st.reserved += extra
		nb := make([]byte, len(buf), n)
		copy(nb, buf)
		return nb, nil
	}
	// One byte more than expected shows the end without a second buffer.
	first := min(limit, size) + 1
	if size < 0 {
		first = min(limit+1, 64<<10)
	}
	buf, err := grow(nil, first)
	if err != nil {
		return nil, err
	}
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return buf, nil // the caller reports it too large
			}
			if buf, err = grow(buf, min(2*int64(cap(buf)), limit+1)); err != nil {
				return nil, err
			}
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// mediaType returns the request's Content-Type without parameters,
// lower-cased; "" when absent.
func mediaType(r *http.Request) (string, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "", nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", errUnsupportedMediaType("malformed Content-Type %q", ct)
	}
	return mt, nil
}

// readJSON reads a JSON request body into v. Unknown fields, trailing data
// and type mismatches are EINVALID errors naming the field.
//
// The body must be labelled application/json (or another +json type): a
// web page of another site can send a body without a Content-Type, or as
// text/plain, with no CORS preflight, but not as JSON. Requiring the label
// keeps such pages from changing anything on a server they can reach,
// such as one open on loopback (docs/security.md, "Web pages").
func (h *handler) readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	mt, err := mediaType(r)
	if err != nil {
		return err
	}
	if mt == "" {
		return errUnsupportedMediaType("Content-Type is required: send the body as application/json")
	}
	if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return errUnsupportedMediaType("Content-Type must be application/json, got %q", mt)
	}
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	return decodeJSON(body, v)
}

// decodeJSON decodes one JSON value into v, disallowing unknown fields.
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return odometer.FieldErrorf("body", "required: send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return odometer.FieldErrorf("body", "malformed JSON: unexpected data after the object at offset %d", dec.InputOffset())
	}
	return nil
}

// jsonError turns an encoding/json error into an EINVALID error naming the
// field, or the offset for syntax errors.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return odometer.FieldErrorf("body", "malformed JSON at offset %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return odometer.FieldErrorf("body", "malformed JSON: unexpected end of input")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		want := typ.Type.Kind().String()
		switch want {
		case "map", "struct":
			want = "object"
		case "slice":
			want = "array"
		}
		return odometer.FieldErrorf(field, "must be a JSON %s, got %s", want, typ.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ = strconv.Unquote(name)
		return odometer.FieldErrorf(name, "unknown field")
	}
	return odometer.FieldErrorf("body", "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	writeJSONBytes(w, status, b)
	return nil
}

// writeJSONBytes writes b, a JSON document, as the response.
func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// params reads a request's query parameters, collecting every problem so
// that one response names all bad parameters.
type params struct {
	values url.Values
	fields []odometer.FieldError
}

// newParams checks that every parameter of r is one of known; a known name
// ending in "[" accepts deepObject keys such as filterGroupBy[model].
// Parameters in unsupported are known but refused.
func newParams(r *http.Request, known []string, unsupported ...string) *params {
	p := &params{values: r.URL.Query()}
	names := make([]string, 0, len(p.values))
	for name := range p.values {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		switch {
		case slices.Contains(unsupported, name) || slices.ContainsFunc(unsupported, func(k string) bool {
			return strings.HasSuffix(k, "[") && strings.HasPrefix(name, k)
		}):
			p.bad(name, "not supported by Odometer")
		case slices.Contains(known, name):
		case slices.ContainsFunc(known, func(k string) bool {
			return strings.HasSuffix(k, "[") && strings.HasPrefix(name, k) && strings.HasSuffix(name, "]") && len(name) > len(k)+1
		}):
		default:
			names := make([]string, len(known))
			for i, k := range known {
				names[i] = strings.Replace(k, "[", "[key]", 1)
			}
			p.bad(name, "unknown parameter (known: %s)", strings.Join(names, ", "))
		}
	}
	return p
}

func (p *params) bad(name, format string, args ...any) {
	p.fields = append(p.fields, odometer.FieldError{Index: -1, Field: name, Reason: fmt.Sprintf(format, args...)})
}

// one returns the single value of name, or "" when absent.
func (p *params) one(name string) string {
	vs := p.values[name]
	if len(vs) > 1 {
		p.bad(name, "given %d times; give it at most once", len(vs))
	}
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// time parses name as an RFC 3339 timestamp; zero when absent.
func (p *params) time(name string) time.Time {
	s := p.one(name)
	if s == "" {
		return time.Time{}
	}
	t, err := parseTime(s)
	if err != nil {
		p.bad(name, "%v", err)
	}
	return t
}

// int parses name as an integer in [min, max]; def when absent.
func (p *params) int(name string, def, min, max int) int {
	s := p.one(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		p.bad(name, "must be an integer from %d to %d, got %q", min, max, s)
		return def
	}
	return n
}

// err returns the collected problems as one EINVALID error, or nil.
func (p *params) err() error {
	return fieldsError("invalid query parameters", p.fields)
}

// fieldsError returns an EINVALID error listing fields, or nil if none.
func fieldsError(msg string, fields []odometer.FieldError) error {
	if len(fields) == 0 {
		return nil
	}
	return &odometer.Error{Code: odometer.EINVALID, Message: msg, Fields: fields}
}

// decodeMap decodes a JSON object member whose values are of type V (what
// want describes). An absent or null member is nil. Problems are appended
// to fields and named "field.key", which encoding/json cannot do for maps.
func decodeMap[V any](raw json.RawMessage, field, want string, fields *[]odometer.FieldError) map[string]V {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		*fields = append(*fields, odometer.FieldError{Index: -1, Field: field, Reason: "must be a JSON object"})
		return nil
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	m := make(map[string]V, len(obj))
	for _, k := range keys {
		var v V
		if err := json.Unmarshal(obj[k], &v); err != nil {
			*fields = append(*fields, odometer.FieldError{Index: -1, Field: field + "." + k, Reason: "must be " + want})
			continue
		}
		m[k] = v
	}
	return m
}

// parseTime parses an RFC 3339 timestamp, with or without fractional
// seconds, into UTC at storage precision.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("not an RFC 3339 timestamp: %q", s)
	}
	return t.UTC().Truncate(odometer.TimePrecision), nil
}

// checkRange adds a problem when both ends are set and from is not before to.
func checkRange(fields []odometer.FieldError, fromName string, from time.Time, toName string, to time.Time) []odometer.FieldError {
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		fields = append(fields, odometer.FieldError{Index: -1, Field: fromName,
			Reason: fmt.Sprintf("must be before %s (ranges are half-open: [%s, %s))", toName, fromName, toName)})
	}
	return fields
}
