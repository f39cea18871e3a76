package api

import (
	"fmt"
	"slices"

	"github.com/odometerhq/odometer"
)

// route is one entry of the route table: its pattern (also the route label
// of the request metrics), the scope an API key needs to call it, the rate
// limit it counts against and its handler.
type route struct {
	pattern string
	scope   string
	limit   rateClass
	fn      handlerFunc
}

// Scopes, as the route table spells them. scopePublic marks the routes
// that need no API key.
const (
	scopeIngest  = odometer.ScopeIngest
	scopeRead    = odometer.ScopeRead
	scopeAdmin   = odometer.ScopeAdmin
	scopeMetrics = odometer.ScopeMetrics
	scopePublic  = "public"
)

// routeTable lists every route of the API with the scope it needs
// (docs/security.md, "Scopes"): POST /api/v1/events needs ingest; reads
// and usage queries (also when sent by POST) need read; everything that
// creates, changes or deletes, and the keys, needs admin; the metrics,
// which describe every namespace, need metrics. An admin key may call
// every route but /metrics. NewHandler refuses a route without a known
// scope.
func routeTable(h *handler) []route {
	return []route{
		{"POST /api/v1/events", scopeIngest, rateIngest, h.ingestEvents},
		{"GET /api/v1/events", scopeRead, rateNone, h.listEvents},
		{"GET /api/v1/events/outcomes", scopeRead, rateNone, h.eventOutcomes},
		{"GET /api/v1/event-subjects", scopeRead, rateNone, h.listSubjects},

		{"GET /api/v1/meters", scopeRead, rateNone, h.listMeters},
		{"POST /api/v1/meters", scopeAdmin, rateNone, h.createMeter},
		{"GET /api/v1/meters/{meterIdOrSlug}", scopeRead, rateNone, h.getMeter},
		{"PUT /api/v1/meters/{meterIdOrSlug}", scopeAdmin, rateNone, h.updateMeter},
		{"DELETE /api/v1/meters/{meterIdOrSlug}", scopeAdmin, rateNone, h.deleteMeter},
		{"GET /api/v1/meters/{meterIdOrSlug}/query", scopeRead, rateQuery, h.queryMeter},
		{"POST /api/v1/meters/{meterIdOrSlug}/query", scopeRead, rateQuery, h.queryMeterPost},
		{"GET /api/v1/meters/{meterIdOrSlug}/group-by/{groupByKey}/values", scopeRead, rateQuery, h.listGroupByValues},

		{"POST /api/v1/features", scopeAdmin, rateNone, h.createFeature},
		{"GET /api/v1/features", scopeRead, rateNone, h.listFeatures},
		{"GET /api/v1/features/{featureIdOrKey}", scopeRead, rateNone, h.getFeature},
		{"DELETE /api/v1/features/{featureIdOrKey}", scopeAdmin, rateNone, h.deleteFeature},
		{"POST /api/v1/features/{featureId}/archive", scopeAdmin, rateNone, h.archiveFeature},

		{"POST /api/v1/ledgers", scopeAdmin, rateNone, h.createLedger},
		{"GET /api/v1/ledgers", scopeRead, rateNone, h.listLedgers},
		{"GET /api/v1/ledgers/{ledgerId}", scopeRead, rateNone, h.getLedger},
		{"POST /api/v1/ledgers/{ledgerId}/grants", scopeAdmin, rateNone, h.createGrant},
		{"GET /api/v1/ledgers/{ledgerId}/grants", scopeRead, rateNone, h.listGrants},
		{"GET /api/v1/ledgers/{ledgerId}/grants/{grantId}", scopeRead, rateNone, h.getGrant},
		{"POST /api/v1/ledgers/{ledgerId}/grants/{grantId}/void", scopeAdmin, rateNone, h.voidGrant},
		{"GET /api/v1/ledgers/{ledgerId}/balance", scopeRead, rateNone, h.getBalance},
		{"GET /api/v1/ledgers/{ledgerId}/history", scopeRead, rateNone, h.getHistory},
		{"POST /api/v1/ledgers/{ledgerId}/reset", scopeAdmin, rateNone, h.resetLedger},
		{"GET /api/v1/ledgers/{ledgerId}/access", scopeRead, rateNone, h.checkAccess},

		{"GET /api/v1/exports", scopeRead, rateNone, h.listExports},
		{"GET /api/v1/exports/{destination}", scopeRead, rateNone, h.getExport},
		{"PUT /api/v1/exports/{destination}", scopeAdmin, rateNone, h.putExport},
		{"DELETE /api/v1/exports/{destination}", scopeAdmin, rateNone, h.deleteExport},
		{"GET /api/v1/exports/{destination}/customers", scopeRead, rateNone, h.listExportCustomers},
		{"PUT /api/v1/exports/{destination}/customers/{subject}", scopeAdmin, rateNone, h.putExportCustomer},
		{"DELETE /api/v1/exports/{destination}/customers/{subject}", scopeAdmin, rateNone, h.deleteExportCustomer},
		{"GET /api/v1/exports/{destination}/records", scopeRead, rateNone, h.listExportRecords},
		{"GET /api/v1/exports/{destination}/status", scopeRead, rateNone, h.exportStatus},

		{"POST /api/v1/keys", scopeAdmin, rateNone, h.createKey},
		{"GET /api/v1/keys", scopeAdmin, rateNone, h.listKeys},
		{"DELETE /api/v1/keys/{keyId}", scopeAdmin, rateNone, h.revokeKey},

		{"GET /api/v1/openapi.yaml", scopePublic, rateNone, h.openAPI},
		{"GET /healthz", scopePublic, rateNone, h.healthz},
		{"GET /readyz", scopePublic, rateNone, h.readyz},
		{"GET /metrics", scopeMetrics, rateNone, h.serveMetrics},
	}
}

// register serves the routes of table, or fails if one has no known
// scope.
func (h *handler) register(table []route) error {
	for _, r := range table {
		if r.scope != scopePublic && !slices.Contains(odometer.Scopes, r.scope) {
			return fmt.Errorf("api: route %q has no scope (want %v or %q)", r.pattern, odometer.Scopes, scopePublic)
		}
		h.mux.Handle(r.pattern, h.handle(r))
	}
	return nil
}
