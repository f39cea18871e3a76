package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// serve serves the dashboard at / and its assets; other paths stay the
// API's.
func TestServeDashboard(t *testing.T) {
	t.Parallel()
	url, _, stop := startServe(t)
	defer stop()
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		resp.Header.Get("Content-Security-Policy") == "" || !strings.Contains(body, "assets/app.js") {
		t.Fatalf("/: %d %s\n%s", resp.StatusCode, resp.Header, body)
	}
	if resp, _ := get("/assets/app.js"); resp.StatusCode != 200 {
		t.Fatalf("/assets/app.js: %d", resp.StatusCode)
	}
	if resp, _ := get("/api/v1/meters"); resp.StatusCode != 200 {
		t.Fatalf("/api/v1/meters: %d", resp.StatusCode)
	}
	if resp, _ := get("/nope"); resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("/nope: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
