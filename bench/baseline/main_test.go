package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestIngestRejects checks the answers given before the database is used.
func TestIngestRejects(t *testing.T) {
	t.Parallel()
	s := &server{log: slog.New(slog.NewTextHandler(io.Discard, nil)), maxBody: 1 << 20}
	for _, tc := range []struct {
		name, contentType, body string
		want                    int
	}{
		{"content type", "text/plain", `{}`, http.StatusUnsupportedMediaType},
		{"malformed", "application/cloudevents-batch+json", `[{"id":`, http.StatusBadRequest},
		{"empty batch", "application/cloudevents-batch+json", `[]`, http.StatusBadRequest},
		{"missing subject", "application/cloudevents+json", `{"id":"1","source":"s","type":"t"}`, http.StatusBadRequest},
		{"specversion", "application/json", `[{"id":"1","source":"s","type":"t","subject":"c","specversion":"0.3"}]`, http.StatusBadRequest},
		{"too large", "application/json", `[` + strings.Repeat(" ", 1<<20) + `]`, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/api/v1/events", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			rec := httptest.NewRecorder()
			s.ingest(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
		})
	}
}
