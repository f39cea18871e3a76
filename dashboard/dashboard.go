// Package dashboard serves Odometer's web dashboard: one HTML page, a few
// JavaScript modules and a stylesheet, embedded in the binary so that
// `go build` yields the whole product. The page talks to the API of the same
// origin (/api/v1/...) with the API key the user signs in with; the key is
// kept in the tab's sessionStorage only.
//
// Routes, relative to where the handler is mounted:
//
//	GET /               index.html (Cache-Control: no-store)
//	GET /assets/{name}  every .js and .css file of static/ (revalidated by ETag)
//
// Every other path is 404: the page routes on location.hash
// (#/meters, #/meters/{slug}, #/customers, #/customers/{subject}, #/events,
// #/exports, #/exports/{name}), so no other path needs the page.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"time"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is the Content-Security-Policy of every response:
// the page loads scripts, styles and data only from its own origin (images
// also as data: URLs), runs no inline script or style and cannot be framed.
const ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self'; " +
	"script-src 'self'; connect-src 'self'; frame-ancestors 'none'"

// assetTypes are the Content-Types of the files served under /assets/; a
// file of another extension is not served.
var assetTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
}

// asset is an embedded file with its Content-Type and strong ETag.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// Handler returns the dashboard's handler. It serves the page at / and its
// assets under /assets/; any other path, or an unknown asset, is 404, and a
// method other than GET or HEAD is 405. Every response carries
// ContentSecurityPolicy, X-Content-Type-Options: nosniff and
// Referrer-Policy: no-referrer. Mount it at the root, or under a prefix with
// http.StripPrefix: the page refers to its assets by relative URLs.
func Handler() http.Handler {
	index, assets := load()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(index))
	})
	mux.HandleFunc("GET /assets/{name}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[r.PathValue("name")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Type", a.contentType)
		w.Header().Set("ETag", a.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		mux.ServeHTTP(w, r)
	})
}

// load reads the embedded page and assets. The files are compiled in, so
// failing to read them is a build defect, not a runtime condition.
func load() (index []byte, assets map[string]asset) {
	index, err := fs.ReadFile(static, "static/index.html")
	if err != nil {
		panic("dashboard: embedded index.html: " + err.Error())
	}
	entries, err := fs.ReadDir(static, "static")
	if err != nil {
		panic("dashboard: embedded static directory: " + err.Error())
	}
	assets = make(map[string]asset)
	for _, e := range entries {
		ct, ok := assetTypes[path.Ext(e.Name())]
		if e.IsDir() || !ok {
			continue
		}
		body, err := fs.ReadFile(static, "static/"+e.Name())
		if err != nil {
			panic("dashboard: embedded " + e.Name() + ": " + err.Error())
		}
		sum := sha256.Sum256(body)
		assets[e.Name()] = asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
	}
	return index, assets
}
