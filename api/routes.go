package api

// routes lists every route of the API. The route label of the request
// metrics is the pattern.
func (h *handler) routes() {
	for _, r := range []struct {
		pattern string
		fn      handlerFunc
	}{
		{"POST /api/v1/events", h.ingestEvents},
		{"GET /api/v1/events", h.listEvents},

		{"GET /api/v1/meters", h.listMeters},
		{"POST /api/v1/meters", h.createMeter},
		{"GET /api/v1/meters/{meterIdOrSlug}", h.getMeter},
		{"PUT /api/v1/meters/{meterIdOrSlug}", h.updateMeter},
		{"DELETE /api/v1/meters/{meterIdOrSlug}", h.deleteMeter},
		{"GET /api/v1/meters/{meterIdOrSlug}/query", h.queryMeter},
		{"POST /api/v1/meters/{meterIdOrSlug}/query", h.queryMeterPost},
		{"GET /api/v1/meters/{meterIdOrSlug}/group-by/{groupByKey}/values", h.listGroupByValues},

		{"POST /api/v1/features", h.createFeature},
		{"GET /api/v1/features", h.listFeatures},
		{"GET /api/v1/features/{featureIdOrKey}", h.getFeature},
		{"DELETE /api/v1/features/{featureIdOrKey}", h.deleteFeature},
		{"POST /api/v1/features/{featureId}/archive", h.archiveFeature},

		{"POST /api/v1/ledgers", h.createLedger},
		{"GET /api/v1/ledgers", h.listLedgers},
		{"GET /api/v1/ledgers/{ledgerId}", h.getLedger},
		{"POST /api/v1/ledgers/{ledgerId}/grants", h.createGrant},
		{"GET /api/v1/ledgers/{ledgerId}/grants", h.listGrants},
		{"GET /api/v1/ledgers/{ledgerId}/grants/{grantId}", h.getGrant},
		{"POST /api/v1/ledgers/{ledgerId}/grants/{grantId}/void", h.voidGrant},
		{"GET /api/v1/ledgers/{ledgerId}/balance", h.getBalance},
		{"GET /api/v1/ledgers/{ledgerId}/history", h.getHistory},
		{"POST /api/v1/ledgers/{ledgerId}/reset", h.resetLedger},
		{"GET /api/v1/ledgers/{ledgerId}/access", h.checkAccess},

		{"GET /api/v1/exports", h.listExports},
		{"GET /api/v1/exports/{destination}", h.getExport},
		{"PUT /api/v1/exports/{destination}", h.putExport},
		{"DELETE /api/v1/exports/{destination}", h.deleteExport},
		{"GET /api/v1/exports/{destination}/customers", h.listExportCustomers},
		{"PUT /api/v1/exports/{destination}/customers/{subject}", h.putExportCustomer},
		{"DELETE /api/v1/exports/{destination}/customers/{subject}", h.deleteExportCustomer},
		{"GET /api/v1/exports/{destination}/records", h.listExportRecords},
		{"GET /api/v1/exports/{destination}/status", h.exportStatus},

		{"GET /api/v1/openapi.yaml", h.openAPI},
		{"GET /healthz", h.healthz},
		{"GET /readyz", h.readyz},
		{"GET /metrics", h.serveMetrics},
	} {
		h.mux.Handle(r.pattern, h.handle(r.pattern, r.fn))
	}
}
