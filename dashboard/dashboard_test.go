package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/odometerhq/odometer/dashboard"
)

// get fetches path from srv and returns the response with its body read.
func get(t *testing.T, srv *httptest.Server, path string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

func checkSecurityHeaders(t *testing.T, path string, res *http.Response) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("GET %s: %s = %q, want %q", path, k, got, want)
		}
	}
}

func TestIndex(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(dashboard.Handler())
	defer srv.Close()
	res, body := get(t, srv, "/", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /: status %d, want 200", res.StatusCode)
	}
	if got, want := res.Header.Get("Content-Type"), "text/html; charset=utf-8"; got != want {
		t.Errorf("GET /: Content-Type %q, want %q", got, want)
	}
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("GET /: Cache-Control %q, want no-store", got)
	}
	checkSecurityHeaders(t, "/", res)
	if !strings.Contains(body, `<script type="module"`) {
		t.Errorf("GET /: no module script in\n%s", body)
	}
}

func TestAssets(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(dashboard.Handler())
	defer srv.Close()
	for _, tc := range []struct{ path, contentType string }{
		{"/assets/app.js", "text/javascript; charset=utf-8"},
		{"/assets/style.css", "text/css; charset=utf-8"},
	} {
		res, body := get(t, srv, tc.path, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", tc.path, res.StatusCode)
			continue
		}
		if got := res.Header.Get("Content-Type"); got != tc.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.contentType)
		}
		if body == "" {
			t.Errorf("GET %s: empty body", tc.path)
		}
		checkSecurityHeaders(t, tc.path, res)

		// The ETag makes a revalidation cheap.
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", tc.path)
			continue
		}
		res, _ = get(t, srv, tc.path, http.Header{"If-None-Match": {etag}})
		if res.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match: status %d, want 304", tc.path, res.StatusCode)
		}
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(dashboard.Handler())
	defer srv.Close()
	for _, path := range []string{
		"/assets/missing.js",
		"/assets/",
		"/assets/index.html", // the page is served at / only
		"/assets/static/app.js",
		"/index.html",
		"/meters/tokens",
		"/app.js",
	} {
		res, _ := get(t, srv, path, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, res.StatusCode)
		}
		checkSecurityHeaders(t, path, res)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(dashboard.Handler())
	defer srv.Close()
	res, err := srv.Client().Post(srv.URL+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", res.StatusCode)
	}
}

// TestIndexReferences checks that every local file index.html refers to is
// served.
func TestIndexReferences(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(dashboard.Handler())
	defer srv.Close()
	_, body := get(t, srv, "/", nil)
	base, err := url.Parse(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(body, -1)
	var checked int
	for _, m := range refs {
		ref, err := url.Parse(m[1])
		if err != nil {
			t.Errorf("index.html: bad reference %q: %v", m[1], err)
			continue
		}
		if ref.Scheme == "data" || (ref.Path == "" && ref.Fragment != "") {
			continue // inline data and hash routes
		}
		u := base.ResolveReference(ref)
		if u.Host != base.Host {
			t.Errorf("index.html refers to another origin: %q", m[1])
			continue
		}
		res, _ := get(t, srv, u.RequestURI(), nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("index.html refers to %q: GET %s is %d", m[1], u.RequestURI(), res.StatusCode)
		}
		checked++
	}
	if checked < 2 {
		t.Errorf("index.html: checked %d local references, want at least the script and the stylesheet", checked)
	}
}

// TestModuleImports follows the imports of the page's JavaScript modules
// from app.js: each module must be served as JavaScript, and each must be
// preloaded by index.html (<link rel="modulepreload">), so that the browser
// fetches them all at once instead of one import level after another.
func TestModuleImports(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(dashboard.Handler())
	defer srv.Close()
	_, index := get(t, srv, "/", nil)
	preloaded := make(map[string]bool)
	for _, m := range regexp.MustCompile(`<link rel="modulepreload" href="assets/([^"]+)">`).FindAllStringSubmatch(index, -1) {
		preloaded[m[1]] = true
	}
	importRE := regexp.MustCompile(`(?m)^(?:import|export)\s[^;]*?\sfrom\s+"\./([^"]+)";`)
	seen := map[string]bool{"app.js": true}
	queue := []string{"app.js"}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		res, body := get(t, srv, "/assets/"+name, nil)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
			t.Errorf("GET /assets/%s: status %d, Content-Type %q", name, res.StatusCode, res.Header.Get("Content-Type"))
			continue
		}
		for _, m := range importRE.FindAllStringSubmatch(body, -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				queue = append(queue, m[1])
				if !preloaded[m[1]] {
					t.Errorf("%s imports %s, which index.html does not preload", name, m[1])
				}
			}
		}
	}
	if len(seen) < 3 {
		t.Errorf("found the modules %v from app.js; want app.js and the ones it imports", seen)
	}
	for name := range preloaded {
		if !seen[name] {
			t.Errorf("index.html preloads %s, which no module imports", name)
		}
	}
}
