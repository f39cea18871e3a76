package api

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/odometerhq/odometer"
)

//go:embed openapi.yaml
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3.0 document that describes the API, as
// served at /api/v1/openapi.yaml.
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

// openAPI handles GET /api/v1/openapi.yaml.
func (h *handler) openAPI(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Content-Length", strconv.Itoa(len(openAPIDocument)))
	_, _ = w.Write(openAPIDocument)
	return nil
}

// healthz handles GET /healthz: the process is up.
func (h *handler) healthz(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyTimeout bounds the store ping of /readyz.
const readyTimeout = 2 * time.Second

// readyz handles GET /readyz: the store answers within readyTimeout.
func (h *handler) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := h.store.Ping(ctx); err != nil {
		h.log.Warn("api: store not ready", "err", err)
		return odometer.Errorf(odometer.EUNAVAILABLE, "the store is not ready")
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// serveMetrics handles GET /metrics.
func (h *handler) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	h.promHandler.ServeHTTP(w, r)
	return nil
}

// slogPrinter lets promhttp log through the handler's logger.
type slogPrinter struct{ h *handler }

func (p slogPrinter) Println(v ...any) { p.h.log.Error("api: metrics: " + fmt.Sprint(v...)) }
