package awsmptest

import (
	"net"
	"sync/atomic"
	"testing"
)

// Trap listens on 127.0.0.1 where a tenant would like the exporter to
// send its requests, and counts the connections made to it, closing each
// at once; the tests of the export grants check that it stays at 0. The
// listener closes when the test ends. url is an http URL on it.
func Trap(t testing.TB) (url string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return "http://" + ln.Addr().String() + "/x", accepted
}
