package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readStatus reads an HTTP response's status line from c within d.
func readStatus(t *testing.T, c net.Conn, d time.Duration) (string, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// dial connects to addr and closes the connection when the test ends.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// adminConfig writes a config file declaring an admin key of namespace
// default, and returns its path and the key's token.
func adminConfig(t *testing.T) (path, token string) {
	t.Helper()
	out := mustRun(t, "keys", "create", "--offline", "--namespace", "default", "--name", "ops", "--scope", "admin")
	path = filepath.Join(t.TempDir(), "odometer.yaml")
	if err := os.WriteFile(path, []byte("keys:\n"+out[strings.Index(out, "\n- {")+1:]), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, tokenRE.FindStringSubmatch(out)[1]
}

// Idle keep-alive connections cannot lock new clients out: with the
// limit's worth of them open, a fresh request is answered at once, and the
// idle connections that had been idle longest are the ones closed.
func TestIdleConnectionsGiveWay(t *testing.T) {
	t.Parallel()
	const limit = 20
	url, _, stop := startServe(t, "--max-conns", fmt.Sprint(limit), "--max-conns-per-addr", "0", "--idle-timeout", "10m")
	defer stop()
	addr := strings.TrimPrefix(url, "http://")
	var idle []net.Conn
	for i := range limit {
		c := dial(t, addr)
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		if st, err := readStatus(t, c, 10*time.Second); err != nil || !strings.Contains(st, "200") {
			t.Fatalf("connection %d: %q %v", i, st, err)
		}
		idle = append(idle, c)
		time.Sleep(2 * time.Millisecond) // an order of idleness
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	for i := range 3 {
		resp, err := hc.Get(url + "/healthz")
		if err != nil {
			t.Fatalf("fresh request %d with %d idle connections open: %v", i, limit, err)
		}
		resp.Body.Close()
		hc.CloseIdleConnections()
	}
	// The first connections made (the longest idle) were closed for them.
	closed := 0
	for _, c := range idle[:5] {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
			closed++
		}
	}
	if closed < 3 {
		t.Errorf("%d of the 5 longest-idle connections were closed; want at least 3", closed)
	}
}

// One address cannot take every connection: at its own limit, with no
// idle connection to close, its next connection is closed at once, while
// another address still gets in.
func TestConnectionsPerAddress(t *testing.T) {
	t.Parallel()
	url, _, stop := startServe(t, "--max-conns", "100", "--max-conns-per-addr", "3", "--header-timeout", "20s")
	defer stop()
	addr := strings.TrimPrefix(url, "http://")
	for range 3 {
		c := dial(t, addr)
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ") // never finished
	}
	time.Sleep(100 * time.Millisecond) // let the server count them
	c := dial(t, addr)
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if st, err := readStatus(t, c, 5*time.Second); err == nil {
		t.Fatalf("a fourth connection from one address was answered: %q", st)
	} else if isTimeoutErr(err) {
		t.Fatalf("a fourth connection from one address was kept waiting instead of closed")
	}
	// 127.0.0.2 is another address of the loopback interface.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	resp, err := hc.Get(url + "/healthz")
	if err != nil {
		t.Fatalf("another address: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("another address: %d", resp.StatusCode)
	}
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A body that stops arriving is cut after --body-timeout with 408, and the
// connection closes, instead of holding it for minutes.
func TestStalledBodyIsCut(t *testing.T) {
	t.Parallel()
	url, _, stop := startServe(t, "--body-timeout", "300ms")
	defer stop()
	addr := strings.TrimPrefix(url, "http://")
	c := dial(t, addr)
	start := time.Now()
	fmt.Fprintf(c, "POST /api/v1/meters HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"slug\":", addr)
	st, err := readStatus(t, c, 10*time.Second)
	if err != nil || !strings.Contains(st, "408") {
		t.Fatalf("a stalled body: %q %v after %s; want 408", st, err, time.Since(start))
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("the stalled body was cut after %s; want about 300ms", waited)
	}
}

// A request without a valid key is answered at once however slowly its
// body comes, and its connection closes: an unauthenticated client holds
// nothing for long.
func TestUnauthenticatedConnectionCloses(t *testing.T) {
	t.Parallel()
	cfg, _ := adminConfig(t)
	url, _, stop := startServe(t, "--config", cfg)
	defer stop()
	addr := strings.TrimPrefix(url, "http://")
	c := dial(t, addr)
	start := time.Now()
	fmt.Fprintf(c, "POST /api/v1/meters HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"slug\":", addr)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a slow unauthenticated request after %s: %v", time.Since(start), err)
	}
	if resp.StatusCode != 401 || !resp.Close {
		t.Fatalf("answer: %d %v; want 401 with Connection: close", resp.StatusCode, resp.Header)
	}
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("answered after %s", waited)
	}
	io.Copy(io.Discard, resp.Body)
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("the connection stayed open after the 401: %v", err)
	}
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "connection reset") }

// sendAll writes a request of head and then n bytes of body as a client
// that reads nothing before it has sent everything, with a small send
// buffer, and returns the status line it then reads.
func sendAll(t *testing.T, addr, head string, n int) string {
	t.Helper()
	c := dial(t, addr)
	c.(*net.TCPConn).SetWriteBuffer(8 << 10)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatalf("write the head: %v", err)
	}
	chunk := strings.Repeat("x", 32<<10)
	for sent := 0; sent < n; sent += len(chunk) {
		if _, err := io.WriteString(c, chunk[:min(len(chunk), n-sent)]); err != nil {
			t.Fatalf("the server hung up after %d of %d bytes: %v", sent, n, err)
		}
	}
	st, err := readStatus(t, c, 10*time.Second)
	if err != nil {
		t.Fatalf("no status after sending everything: %v", err)
	}
	return st
}

// A client that sends a body too large, or headers too large, before it
// reads anything still receives the 413 or 431: the server reads and
// discards a bounded amount of what it refused instead of resetting the
// connection under the answer.
func TestRefusalsAreReadable(t *testing.T) {
	t.Parallel()
	url, _, stop := startServe(t, "--max-body-bytes", "1MiB")
	defer stop()
	addr := strings.TrimPrefix(url, "http://")
	const body = 3 << 19 // 1.5 MiB
	for name, head := range map[string]string{
		"declared length": fmt.Sprintf("POST /api/v1/events HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, body),
		"chunked":         fmt.Sprintf("POST /api/v1/events HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", addr, body),
	} {
		if st := sendAll(t, addr, head, body); !strings.Contains(st, "413") {
			t.Errorf("%s: %q; want 413", name, st)
		}
	}
	head := fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: %s\r\nX-Big: ", addr)
	if st := sendAll(t, addr, head, 3<<19); !strings.Contains(st, "431") {
		t.Errorf("large headers: %q; want 431", st)
	}
}

// --metrics-addr serves /metrics without a key, apart from the API, which
// then still asks for a key with the metrics scope.
func TestMetricsAddr(t *testing.T) {
	t.Parallel()
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := ln.Addr().String()
	ln.Close()
	cfg, admin := adminConfig(t)
	url, _, stop := startServe(t, "--config", cfg, "--metrics-addr", maddr)
	defer stop()
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "odometer_ingest_events_total") {
		t.Fatalf("--metrics-addr: %d %.200s", resp.StatusCode, b)
	}
	for tok, want := range map[string]int{"": 401, admin: 403} {
		req, _ := http.NewRequest("GET", url+"/metrics", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("/metrics of the API with a key (%v): %d; want %d", tok != "", resp.StatusCode, want)
		}
	}
}
