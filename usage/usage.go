// Package usage is the query engine: it aggregates a meter's events into
// usage rows exactly, from the stored events and from usage rollups. The
// root package keeps the domain types (Meter, UsageQuery, UsageResult) and
// the store interfaces; the rules that turn events into usage live here.
package usage

import (
	"sort"
	"strings"

	"github.com/odometerhq/odometer"
)

// groupPath returns the compiled path of the meter's group-by key k, which
// the caller knows the meter has.
func groupPath(m *odometer.CompiledMeter, k string) odometer.Path {
	p, _ := m.GroupPath(k)
	return p
}

// keyList names the meter's group-by keys for an error message.
func keyList(m *odometer.CompiledMeter) string {
	if len(m.GroupKeys()) == 0 {
		return "none"
	}
	return strings.Join(m.GroupKeys(), ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

type lateKey struct{ namespace, typ, subject string }
