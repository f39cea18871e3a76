package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/odometerhq/odometer"
)

// handlerFunc is the form of every route handler: it writes a response and
// returns nil, or writes nothing and returns an error for the adapter to
// render.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// statusError is a protocol-level failure that no odometer error code
// describes (unknown route, wrong method, unsupported media type).
type statusError struct {
	status int
	detail string
	header http.Header // extra response headers, e.g. Allow
}

func (e *statusError) Error() string { return e.detail }

// errUnsupportedMediaType returns a 415 error.
func errUnsupportedMediaType(format string, args ...any) error {
	return &statusError{status: http.StatusUnsupportedMediaType, detail: fmt.Sprintf(format, args...)}
}

// errorStatus maps an error to its HTTP status. It is the only place that
// knows how odometer error codes become statuses.
func errorStatus(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.status
	}
	switch odometer.ErrorCode(err) {
	case odometer.EINVALID:
		return http.StatusBadRequest
	case odometer.ENOTFOUND:
		return http.StatusNotFound
	case odometer.ECONFLICT:
		return http.StatusConflict
	case odometer.EFORBIDDEN:
		return http.StatusForbidden
	case odometer.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case odometer.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// problem is an RFC 9457 problem document, in the shape of OpenMeter's
// UnexpectedProblemResponse plus an "errors" member listing bad fields.
type problem struct {
	Type     string         `json:"type"`
	Title    string         `json:"title"`
	Status   int            `json:"status"`
	Detail   string         `json:"detail"`
	Instance string         `json:"instance"`
	Errors   []problemField `json:"errors,omitempty"`
}

// problemField is one rejected field. Index is the event's position in a
// batch and is absent for errors that are not about a batch element.
type problemField struct {
	Index  *int   `json:"index,omitempty"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// problemContentType is exact: OpenMeter's SDK compares the header verbatim.
const problemContentType = "application/problem+json"

// newProblem describes err for the API user. Internal errors get a generic
// detail; their text belongs in the log only.
func newProblem(err error, status int, requestID string) problem {
	p := problem{
		Type:     "about:blank",
		Title:    http.StatusText(status),
		Status:   status,
		Instance: "urn:request:" + requestID,
	}
	var se *statusError
	switch {
	case errors.As(err, &se):
		p.Detail = se.detail
	case status >= 500 && odometer.ErrorCode(err) == odometer.EINTERNAL:
		p.Detail = "internal error; see the server log for request " + requestID
	default:
		p.Detail = detail(err)
	}
	p.Detail = redact(p.Detail)
	for _, f := range odometer.ErrorFields(err) {
		pf := problemField{Field: redact(f.Field), Reason: redact(f.Reason)}
		if f.Index >= 0 {
			i := f.Index
			pf.Index = &i
		}
		p.Errors = append(p.Errors, pf)
	}
	return p
}

// maxDetailFields is how many field errors the detail spells out; the
// errors member lists them all.
const maxDetailFields = 5

// detail is the user-facing text of err: its message followed by the field
// errors that the message does not already state, because SDKs (OpenMeter's
// among them) show the detail and not the errors member.
func detail(err error) string {
	var e *odometer.Error
	if !errors.As(err, &e) {
		return odometer.ErrorMessage(err)
	}
	var extra []string
	for _, f := range e.Fields {
		if !strings.Contains(e.Message, f.Reason) {
			extra = append(extra, f.String())
		}
	}
	if len(extra) == 0 {
		return e.Message
	}
	d := e.Message + ": " + strings.Join(extra[:min(len(extra), maxDetailFields)], "; ")
	if len(extra) > maxDetailFields {
		d += fmt.Sprintf("; and %d more (see errors)", len(extra)-maxDetailFields)
	}
	return d
}

// writeProblem renders err as a problem document.
func writeProblem(w http.ResponseWriter, err error, requestID string) int {
	status := errorStatus(err)
	var se *statusError
	if errors.As(err, &se) {
		for k, v := range se.header {
			w.Header()[k] = v
		}
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	body, _ := json.Marshal(newProblem(err, status, requestID))
	w.Header().Set("Content-Type", problemContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
	return status
}

// responseWriter records the status a handler wrote.
type responseWriter struct {
	http.ResponseWriter
	status int
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// handle adapts a route's handler: it assigns a request id, resolves the
// caller (authorize), renders and logs a returned error (or a panic), and
// records the request metrics. Nothing it logs holds a request header, so
// no token reaches the log; a failed request's log names the key by id.
func (h *handler) handle(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.serve(rt, w, r)
	})
}

func (h *handler) serve(rt route, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := odometer.NewID(start)
	w.Header().Set("X-Request-Id", id)
	rw := &responseWriter{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			err := fmt.Errorf("panic: %v", v)
			h.log.Error("api: handler panicked", "request", id, "route", rt.pattern, "err", redact(err.Error()), "stack", string(debug.Stack()))
			if rw.status == 0 {
				writeProblem(rw, err, id)
			}
		}
		status := rw.status
		if status == 0 {
			status = http.StatusOK
		}
		h.metrics.observe(rt.pattern, status, time.Since(start))
	}()
	r, st := withState(r)
	defer func() { h.bodies.give(st.reserved) }()
	err := h.checkRequest(rt, r)
	var c *caller
	if err == nil {
		r, c, err = h.authorize(rt, r)
	}
	if err == nil {
		err = rt.fn(rw, r)
	}
	if err == nil {
		return
	}
	attrs := []any{"request", id, "route", rt.pattern}
	if c != nil && c.key != nil {
		attrs = append(attrs, "namespace", c.namespace, "key", c.key.ID)
	}
	if rw.status != 0 {
		// The response has started; all we can do is log.
		h.log.Error("api: error after response started", append(attrs, "err", redact(err.Error()))...)
		return
	}
	// A request refused before its body was read to the end, and every
	// unauthenticated one, ends its connection: net/http would otherwise
	// read, up to its timeouts, the rest of a body nobody needs before it
	// answers. (What the client still sends is read and discarded where
	// connections are closed: see cmd/odometer's connLimiter.)
	unread := st.unread()
	if unread || errorStatus(err) == http.StatusUnauthorized {
		rw.Header().Set("Connection", "close")
	}
	status := writeProblem(rw, err, id)
	if unread {
		// net/http reads up to 256 KiB of what is left before it closes,
		// so that a small body does not reset the connection; a second
		// is all it gets for that.
		rc := http.NewResponseController(rw)
		_ = rc.Flush()
		_ = rc.SetReadDeadline(time.Now().Add(time.Second))
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	h.log.Log(r.Context(), level, "api: request failed", append(attrs, "method", r.Method, "path", redact(r.URL.Path), "status", status, "err", redact(err.Error()))...)
}

// ServeHTTP dispatches to the routes. Requests that match no route get a
// 404 or 405 problem document instead of the mux's plain-text answer.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := h.mux.Handler(r); pattern != "" {
		h.mux.ServeHTTP(w, r)
		return
	}
	// Let the mux decide between 404, 405 (with Allow) and a redirect, then
	// render 404 and 405 as problems.
	rec := &recorder{header: http.Header{}}
	h.mux.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusNotFound:
		h.serve(route{pattern: "unmatched", scope: scopePublic, fn: func(http.ResponseWriter, *http.Request) error {
			return &statusError{status: http.StatusNotFound, detail: fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)}
		}}, w, r)
	case http.StatusMethodNotAllowed:
		h.serve(route{pattern: "unmatched", scope: scopePublic, fn: func(http.ResponseWriter, *http.Request) error {
			return &statusError{status: http.StatusMethodNotAllowed,
				detail: fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, rec.header.Get("Allow")),
				header: http.Header{"Allow": rec.header.Values("Allow")}}
		}}, w, r)
	default:
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
	}
}

// recorder captures what the mux answers for a request no route matches.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
