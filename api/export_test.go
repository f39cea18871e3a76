package api

// Route is a route of the table NewHandler serves, for the tests: its
// pattern and the scope it needs ("public": none).
type Route struct{ Pattern, Scope string }

// Routes returns the route table, so that tests over every route fail when
// a route is added without a test case.
func Routes() []Route {
	var out []Route
	for _, r := range routeTable(&handler{}) {
		out = append(out, Route{r.pattern, r.scope})
	}
	return out
}
