package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/odometerhq/odometer"
)

// Request guards (docs/security.md, "Limits" and "Web pages"): what bounds
// the memory and time one request may hold, and what keeps web pages that
// an operator has open from driving the server.

// Defaults for Config.
const (
	// DefaultMaxInflightBodyBytes bounds the request bodies held in memory
	// at once, by every request together: 8 bodies of the default maximum
	// size.
	DefaultMaxInflightBodyBytes = 128 << 20
	// DefaultBodyTimeout is how long a request body may go without a byte
	// arriving before the request is cut.
	DefaultBodyTimeout = 10 * time.Second
)

// maxBodyTime bounds the reading of a whole body, however steadily it
// arrives: a body of the maximum size over a slow link.
const maxBodyTime = 2 * time.Minute

// bodyBudget counts the request body bytes that requests hold in memory,
// all requests together, so that concurrent bodies cannot exhaust memory.
type bodyBudget struct {
	max  int64
	used atomic.Int64
}

// take reserves n bytes, or reports false, reserving nothing, when that
// would exceed the budget.
func (b *bodyBudget) take(n int64) bool {
	if b.used.Add(n) > b.max {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *bodyBudget) give(n int64) {
	if n != 0 {
		b.used.Add(-n)
	}
}

// errBusy answers a request whose body does not fit in the budget.
func (b *bodyBudget) errBusy() error {
	return odometer.Errorf(odometer.EUNAVAILABLE,
		"the server is busy: the request bodies in flight hold %d of the %d bytes allowed (--max-inflight-body); retry later",
		b.used.Load(), b.max)
}

// requestState is what the adapter tracks of one request for its guards:
// the body bytes it holds from the budget, and whether its body was read
// to the end.
type requestState struct {
	reserved int64
	body     *trackedBody // nil: the request has no body
}

type requestStateKey struct{}

// stateOf returns r's state; a request served outside the adapter (none
// should be) gets a fresh one that nothing releases.
func stateOf(r *http.Request) *requestState {
	if s, ok := r.Context().Value(requestStateKey{}).(*requestState); ok {
		return s
	}
	return &requestState{}
}

// withState returns a copy of r carrying a fresh state, its body tracked.
// (net/http looks at the body of the request it made, so that one stays
// as it is.)
func withState(r *http.Request) (*http.Request, *requestState) {
	st := &requestState{}
	r = r.WithContext(context.WithValue(r.Context(), requestStateKey{}, st))
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		st.body = &trackedBody{ReadCloser: r.Body}
		r.Body = st.body
	}
	return r, st
}

// trackedBody records whether a request body was read to its end.
type trackedBody struct {
	io.ReadCloser
	eof bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// unread reports whether the request has a body not read to its end.
func (s *requestState) unread() bool { return s.body != nil && !s.body.eof }

// progressReader cuts a body that stops arriving: before each read it
// moves the connection's read deadline to stall from now, but never past
// end.
type progressReader struct {
	r     io.Reader
	rc    *http.ResponseController
	stall time.Duration
	end   time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	d := time.Now().Add(p.stall)
	if d.After(p.end) {
		d = p.end
	}
	_ = p.rc.SetReadDeadline(d)
	n, err := p.r.Read(b)
	if err == io.EOF {
		// net/http now reads in the background to notice a client that
		// goes away, and would take a deadline passing while the handler
		// works for that, cancelling the request.
		_ = p.rc.SetReadDeadline(time.Time{})
	}
	if err != nil && isTimeout(err) {
		err = &statusError{status: http.StatusRequestTimeout,
			detail: fmt.Sprintf("the request body stopped arriving: nothing came for %s, or it took longer than %s", p.stall, maxBodyTime)}
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// hostAllowed reports whether an Open handler answers a request sent to
// host (the Host header). A web page can make its own host name resolve
// to 127.0.0.1 (DNS rebinding) and then read whatever a server open on
// loopback answers; its requests name that host. IP addresses and
// localhost cannot be rebound that way, so they are always allowed; other
// names only when the operator lists them.
func (h *handler) hostAllowed(host string) bool {
	if host == "" {
		return true // HTTP/1.0 without Host: not a browser
	}
	if hn, _, err := net.SplitHostPort(host); err == nil {
		host = hn
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" || net.ParseIP(host) != nil {
		return true
	}
	return slices.Contains(h.allowedHosts, host)
}

// checkRequest applies the guards that come before authentication: in
// Open mode the Host must be allowed, and a request that changes
// something must not come from a page of another origin.
func (h *handler) checkRequest(rt route, r *http.Request) error {
	if rt.scope != scopePublic && h.open.on.Load() && !h.hostAllowed(r.Host) {
		return &statusError{status: http.StatusForbidden,
			detail: fmt.Sprintf("host %q is not allowed: a server without API keys answers only requests sent to localhost or an IP address, "+
				"or to a host named by --allowed-hosts (docs/security.md)", r.Host)}
	}
	if err := h.crossOrigin.Check(r); err != nil {
		return &statusError{status: http.StatusForbidden,
			detail: "cross-origin request refused: a page of another origin may not change anything here (Sec-Fetch-Site or Origin names another origin)"}
	}
	return nil
}
