package ui

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// dist is the built dashboard (make dashboard).
//
//go:embed all:dist
var dist embed.FS

// FS returns the built dashboard's files (index.html, assets/...).
func FS() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic("BUG: ui: embedded dist missing: " + err.Error())
	}
	return sub
}

// file is one asset, with its gzip form when that is smaller.
type file struct {
	body, gz []byte
	ctype    string
	// immutable: the name carries a content hash (assets/…-<hash>.js).
	immutable bool
}

// csp lets the page load only its own files and talk only to its own
// origin (the API) and WebSocket listeners (the live subscription, on
// another port). Inline styles are allowed because uPlot sizes its
// canvas with style attributes.
const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Handler serves the dashboard: / is index.html, assets/* are the
// hashed bundles (cached for a year), gzip-encoded for clients that accept
// it. Every file is read and compressed once, here; a request only copies
// bytes. Anything else is 404: the routes live in the URL fragment, so no
// path needs an index.html fallback.
func Handler() http.Handler {
	files := map[string]*file{}
	root := FS()
	err := fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(path.Base(p), ".") {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		f := &file{body: b, ctype: mime.TypeByExtension(path.Ext(p)), immutable: strings.HasPrefix(p, "assets/")}
		if f.ctype == "" {
			f.ctype = "application/octet-stream"
		}
		var z bytes.Buffer
		w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		_, _ = w.Write(b)
		_ = w.Close()
		if z.Len() < len(b)*9/10 {
			f.gz = z.Bytes()
		}
		files["/"+p] = f
		return nil
	})
	if err != nil {
		panic("BUG: ui: reading the embedded dashboard: " + err.Error())
	}
	files["/"] = files["/index.html"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := files[r.URL.Path]
		if f == nil {
			http.Error(w, "404 page not found: the dashboard is at /, the API under /api/v1/", http.StatusNotFound)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.ctype)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if f.immutable {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
			h.Set("Content-Security-Policy", csp)
			h.Set("X-Frame-Options", "DENY")
		}
		body := f.body
		if f.gz != nil {
			h.Add("Vary", "Accept-Encoding")
			if acceptsGzip(r.Header.Get("Accept-Encoding")) {
				h.Set("Content-Encoding", "gzip")
				body = f.gz
			}
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(body)
	})
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip
// (present, and not with q=0).
func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
