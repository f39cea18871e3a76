package main

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimiter bounds the server's client connections (docs/security.md,
// "Connections"): at most max at once, and at most perAddr (0: no limit)
// from one client address. Idle keep-alive connections give way first: a
// connection accepted at the limit, or near it, closes the connection that
// has been idle longest, so that idle connections can never lock new
// clients out. Only when every connection is busy does a new one wait to
// be accepted; the server's timeouts cut those that send too slowly.
//
// Set ConnState of the http.Server to the limiter's ConnState: that is
// how it learns which connections are idle.
type connLimiter struct {
	net.Listener
	max, perAddr int
	// drainBytes bounds what a connection reads and discards when the
	// server hangs up on a client that is still sending (see
	// limitedConn.Close).
	drainBytes int64

	mu     sync.Mutex
	wake   *sync.Cond // a connection closed
	open   int
	byAddr map[string]int
	idle   map[*limitedConn]time.Time // since when each idle connection is idle
	closed bool
}

// nearFull is the share of max from which every new connection closes an
// idle one: headroom, so that a burst of clients does not have to wait.
const nearFull = 0.9

func newConnLimiter(l net.Listener, max, perAddr int, drainBytes int64) *connLimiter {
	c := &connLimiter{Listener: l, max: max, perAddr: perAddr, drainBytes: drainBytes,
		byAddr: map[string]int{}, idle: map[*limitedConn]time.Time{}}
	c.wake = sync.NewCond(&c.mu)
	return c
}

// Accept returns the next connection once there is room for it. A client
// address at its own limit, with no idle connection to give way, has its
// new connection closed at once.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := hostOf(nc.RemoteAddr())
		l.mu.Lock()
		if l.perAddr > 0 && l.byAddr[addr] >= l.perAddr && !l.closeIdle(addr) {
			l.mu.Unlock()
			nc.Close()
			continue
		}
		if float64(l.open) >= nearFull*float64(l.max) {
			l.closeIdle("")
		}
		for l.open >= l.max && !l.closed {
			if !l.closeIdle("") {
				l.wake.Wait()
			}
		}
		if l.closed {
			l.mu.Unlock()
			nc.Close()
			return nil, net.ErrClosed
		}
		l.open++
		l.byAddr[addr]++
		l.mu.Unlock()
		return &limitedConn{Conn: nc, l: l, addr: addr}, nil
	}
}

// Close closes the listener, and wakes an Accept waiting for room.
func (l *connLimiter) Close() error {
	l.mu.Lock()
	l.closed = true
	l.wake.Broadcast()
	l.mu.Unlock()
	return l.Listener.Close()
}

// closeIdle closes the connection of addr ("": of any address) that has
// been idle longest, and reports whether there was one. l.mu is held; the
// connection gives its slot back at once.
func (l *connLimiter) closeIdle(addr string) bool {
	var oldest *limitedConn
	var since time.Time
	for c, t := range l.idle {
		if (addr == "" || c.addr == addr) && (oldest == nil || t.Before(since)) {
			oldest, since = c, t
		}
	}
	if oldest == nil {
		return false
	}
	l.releaseLocked(oldest)
	// The server's goroutine, waiting for the next request on it, sees
	// the connection closed and ends.
	oldest.Conn.Close()
	return true
}

// ConnState is the http.Server's ConnState hook.
func (l *connLimiter) ConnState(nc net.Conn, state http.ConnState) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, ok := nc.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if state == http.StateIdle && !c.released {
		l.idle[c] = time.Now()
	} else {
		delete(l.idle, c)
	}
}

// releaseLocked gives c's slot back, once. l.mu is held.
func (l *connLimiter) releaseLocked(c *limitedConn) {
	if c.released {
		return
	}
	c.released = true
	delete(l.idle, c)
	l.open--
	if l.byAddr[c.addr]--; l.byAddr[c.addr] <= 0 {
		delete(l.byAddr, c.addr)
	}
	l.wake.Signal()
}

// hostOf returns the IP address of a remote address, the unit of the
// per-address limit.
func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// limitedConn is a connection counted by a connLimiter.
type limitedConn struct {
	net.Conn
	l        *connLimiter
	addr     string
	released bool // guarded by l.mu

	closeOnce sync.Once
}

// CloseWrite ends the sending side, as net/http does before it hangs up on
// a client that may still be sending, so that the client sees the answer
// end.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close closes the connection and gives its slot back. When the client is
// still sending — the server refused a body or headers too large, or a
// request it would not read — closing would reset the connection, and
// the client would lose the answer it was sent; so Close first reads and
// discards up to drainBytes of what comes, for at most drainTime.
func (c *limitedConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.drain()
		err = c.Conn.Close()
		c.l.mu.Lock()
		c.l.releaseLocked(c)
		c.l.mu.Unlock()
	})
	return err
}

func (c *limitedConn) drain() {
	if c.l.drainBytes <= 0 {
		return
	}
	// A short deadline: a connection closed while its client sends
	// nothing (idle, or done) must not wait.
	_ = c.Conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [512]byte
	if n, _ := c.Conn.Read(b[:]); n == 0 {
		return
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(drainTime))
	_, _ = io.CopyN(io.Discard, c.Conn, c.l.drainBytes)
}

// drainTime bounds how long a connection reads what a client still sends
// after the server hung up on it.
const drainTime = 5 * time.Second

// minDrainBytes is the least a connection reads and discards when its
// client is still sending as it closes: a body somewhat larger than the
// limit gets its 413 read.
const minDrainBytes = 16 << 20
