package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the client light: applications import it, so it must not
// pull in the server (any other package of this module), database drivers
// or metrics libraries.
func TestDeps(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	const self = "github.com/odometerhq/odometer/client"
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", self).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/odometerhq/odometer", // the module root and every package under it but client
		"database/sql",
		"github.com/mattn/go-sqlite3",
		"modernc.org/sqlite",
		"github.com/jackc/",
		"github.com/lib/pq",
		"github.com/cockroachdb/pebble",
		"github.com/prometheus/",
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps printed nothing")
	}
	for _, dep := range deps {
		if dep == self || strings.HasPrefix(dep, self+"/") {
			continue // the client's own subpackages may come later
		}
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, strings.TrimSuffix(f, "/")+"/") {
				t.Errorf("client depends on %s (forbidden: %s)", dep, f)
			}
		}
	}
}

// TestBillingDeps keeps the server and databases out of client/billing,
// which may use Prometheus (its metrics are part of its API).
func TestBillingDeps(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	const pkg = "github.com/odometerhq/odometer/client/billing"
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps printed nothing")
	}
	for _, dep := range deps {
		switch {
		case dep == pkg, dep == "github.com/odometerhq/odometer/client":
		case strings.HasPrefix(dep, "github.com/odometerhq/odometer"),
			dep == "database/sql", strings.HasPrefix(dep, "github.com/mattn/"), strings.HasPrefix(dep, "github.com/jackc/"),
			strings.HasPrefix(dep, "github.com/cockroachdb/"), strings.HasPrefix(dep, "modernc.org/"):
			t.Errorf("client/billing depends on %s", dep)
		}
	}
}
