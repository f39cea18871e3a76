package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:8888": true, "[::1]:8888": true, "localhost:1": true, "127.1.2.3:0": true,
		"0.0.0.0:8888": false, ":8888": false, "[::]:8888": false, "10.0.0.1:80": false,
		"odometer.internal:80": false, "garbage": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// Without keys, serve refuses an address other hosts can reach, unless
// --insecure; on loopback it serves open and says so.
func TestServeOpenOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	var stderr strings.Builder
	err := run(t.Context(), []string{"serve", "--addr", "0.0.0.0:0", "--data", t.TempDir()}, mapEnv(nil),
		strings.NewReader(""), &strings.Builder{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "--insecure") || !strings.Contains(err.Error(), "refusing to serve without API keys") {
		t.Fatalf("serve on 0.0.0.0 without keys: %v", err)
	}
	_, log, stop := startServe(t)
	if !strings.Contains(log.String(), "no API keys: serving open") {
		t.Errorf("the open server does not say so:\n%s", log)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	_, log, stop = startServe(t, "--addr", "0.0.0.0:0", "--insecure")
	if !strings.Contains(log.String(), "no API keys: serving open") {
		t.Errorf("the insecure server does not say it is open:\n%s", log)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

var tokenRE = regexp.MustCompile(`token: (odo_\S+)`)

// A key made offline and declared in the config file by its hash: the
// server needs it, the CLI sends it from --api-key or $ODOMETER_API_KEY,
// and the server may then listen beyond loopback.
func TestServeKeysFromConfig(t *testing.T) {
	t.Parallel()
	out := mustRun(t, "keys", "create", "--offline", "--namespace", "default", "--name", "ops", "--scope", "admin")
	m := tokenRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no token in:\n%s", out)
	}
	token := m[1]
	entry := out[strings.Index(out, "\n- {")+1:]
	cfg := filepath.Join(t.TempDir(), "odometer.yaml")
	if err := os.WriteFile(cfg, []byte("keys:\n"+entry), 0o644); err != nil {
		t.Fatal(err)
	}
	url, log, stop := startServe(t, "--config", cfg, "--addr", "0.0.0.0:0")
	defer stop()
	url = strings.Replace(url, "0.0.0.0", "127.0.0.1", 1)
	if strings.Contains(log.String(), "serving open") {
		t.Fatalf("a server with keys says it is open:\n%s", log)
	}
	if _, _, err := runCmd(t, "", "meters", "--server="+url); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("meters without a key: %v", err)
	}
	mustRun(t, "meters", "--server="+url, "--api-key="+token)
	if _, stderr, err := runCmdEnv(t, map[string]string{"ODOMETER_API_KEY": token}, "", "meters", "--server="+url); err != nil {
		t.Fatalf("meters with $ODOMETER_API_KEY: %v\n%s", err, stderr)
	}
	// Keys made through the API, listed and revoked by the CLI.
	out = mustRun(t, "keys", "create", "--server="+url, "--api-key="+token, "--name", "ingest-only", "--scope", "ingest")
	m = tokenRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no token in:\n%s", out)
	}
	list := mustRun(t, "keys", "list", "--server="+url, "--api-key="+token)
	if !strings.Contains(list, "ingest-only") || !strings.Contains(list, "ops") {
		t.Fatalf("keys list:\n%s", list)
	}
	if strings.Contains(list, m[1]) || strings.Contains(list, token) {
		t.Fatalf("keys list shows a token:\n%s", list)
	}
	id := strings.TrimPrefix(m[1], "odo_")[:26]
	mustRun(t, "keys", "revoke", id, "--server="+url, "--api-key="+token)
	if strings.Contains(log.String(), token) || strings.Contains(log.String(), m[1]) {
		t.Fatalf("a token is in the server's log")
	}
}

// --tls-cert and --tls-key serve HTTPS.
func TestServeTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := writeSelfSigned(t, certFile, keyFile)
	url, log, stop := startServe(t, "--tls-cert", certFile, "--tls-key", keyFile)
	defer stop()
	if !strings.Contains(log.String(), "tls=true") {
		t.Errorf("log does not say TLS:\n%s", log)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(strings.Replace(url, "http://", "https://", 1) + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("healthz over TLS: %d, tls %v", resp.StatusCode, resp.TLS != nil)
	}
	// Go's TLS server answers plain HTTP with 400 and nothing else.
	if resp, err := http.Get(url + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the TLS server: %d", resp.StatusCode)
		}
	}
	if err := run(context.Background(), []string{"serve", "--tls-cert", certFile, "--data", t.TempDir()}, mapEnv(nil),
		strings.NewReader(""), &strings.Builder{}, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("--tls-cert alone: %v", err)
	}
}

func writeSelfSigned(t *testing.T, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "odometer test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// The connection cap: with room for one busy connection a second waits
// until the first closes.
func TestConnLimiterWaitsForRoom(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newConnLimiter(inner, 1, 0, 0)
	defer ln.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	c1, _ := net.Dial("tcp", inner.Addr().String())
	defer c1.Close()
	first := <-accepted
	c2, _ := net.Dial("tcp", inner.Addr().String())
	defer c2.Close()
	select {
	case <-accepted:
		t.Fatal("a second connection was accepted while the first was open")
	case <-time.After(200 * time.Millisecond):
	}
	first.Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the second connection was not accepted after the first closed")
	}
}

// Slow clients cannot hold every connection: with room for two
// connections, two clients that never finish their headers are cut off
// after --header-timeout, and a normal request gets through.
func TestSlowClientsCannotExhaustConnections(t *testing.T) {
	t.Parallel()
	url, _, stop := startServe(t, "--max-conns", "2", "--header-timeout", "300ms")
	defer stop()
	addr := strings.TrimPrefix(url, "http://")
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(url + "/healthz")
	if err != nil {
		t.Fatalf("a normal client behind two slow ones: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("served after %s: the two slow connections did not hold the two slots", waited)
	}
}
