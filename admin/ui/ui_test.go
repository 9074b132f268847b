package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var updateSourceHash = flag.Bool("update-source-hash", false, "write dist/.source-sha256 (make dashboard does, after building)")

// sourceHash digests what the build reads (src/, index.html and the
// package, TypeScript and Vite configuration): dist/.source-sha256 holds
// it for the sources dist/ was built from.
func sourceHash(t *testing.T) string {
	t.Helper()
	files := []string{"index.html", "licenses.mjs", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts"}
	err := filepath.WalkDir("src", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, filepath.ToSlash(p))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		io.WriteString(h, f+"\x00"+hex.EncodeToString(sum[:])+"\n")
	}
	return hex.EncodeToString(h.Sum(nil))
}

// The committed dist/ was built from the committed sources: a change to
// src/ without `make dashboard` fails here.
func TestDistMatchesSources(t *testing.T) {
	want := sourceHash(t)
	if *updateSourceHash {
		if err := os.WriteFile("dist/.source-sha256", []byte(want+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("dist/.source-sha256")
	if err != nil {
		t.Fatalf("dist/.source-sha256: %v (run make dashboard)", err)
	}
	if strings.TrimSpace(string(got)) != want {
		t.Fatalf("admin/ui/dist was not built from the sources in admin/ui (hash %s, sources %s): run make dashboard and commit dist/", strings.TrimSpace(string(got)), want)
	}
}

func get(t *testing.T, h http.Handler, method, path, ae string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	if ae != "" {
		r.Header.Set("Accept-Encoding", ae)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

var assetRef = regexp.MustCompile(`(?:src|href)="([^"]+)"`)

// / is index.html; every asset it names is served with its type, cached
// for good (hashed names), gzip-encoded on request; nothing comes from
// another origin.
func TestHandler_ServesIndexAndAssets(t *testing.T) {
	h := Handler()
	res := get(t, h, "GET", "/", "")
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Fatalf("GET /: Cache-Control %q, want no-cache (index.html names the current bundles)", cc)
	}
	if !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("GET /: CSP %q", res.Header.Get("Content-Security-Policy"))
	}
	refs := assetRef.FindAllStringSubmatch(string(body), -1)
	var assets int
	for _, m := range refs {
		ref := m[1]
		if strings.HasPrefix(ref, "data:") {
			continue
		}
		if strings.Contains(ref, "//") {
			t.Fatalf("index.html loads %q from elsewhere: the dashboard must work offline", ref)
		}
		p := "/" + strings.TrimPrefix(ref, "./")
		plain := get(t, h, "GET", p, "")
		pb, _ := io.ReadAll(plain.Body)
		if plain.StatusCode != 200 || len(pb) == 0 {
			t.Fatalf("GET %s: %d, %d bytes", p, plain.StatusCode, len(pb))
		}
		ct := plain.Header.Get("Content-Type")
		if (strings.HasSuffix(p, ".js") && !strings.Contains(ct, "javascript")) || (strings.HasSuffix(p, ".css") && !strings.HasPrefix(ct, "text/css")) {
			t.Fatalf("GET %s: Content-Type %q", p, ct)
		}
		if cc := plain.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Fatalf("GET %s: Cache-Control %q", p, cc)
		}
		z := get(t, h, "GET", p, "br, gzip;q=0.8")
		if z.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("GET %s with gzip accepted: Content-Encoding %q", p, z.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(z.Body)
		if err != nil {
			t.Fatal(err)
		}
		unz, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(unz, pb) {
			t.Fatalf("GET %s: gzip body differs from the plain one (%v)", p, err)
		}
		assets++
	}
	if assets < 2 {
		t.Fatalf("index.html names %d assets, want the script and the stylesheet:\n%s", assets, body)
	}
}

// The licenses of what the bundles hold ship beside them (the minifier
// drops license comments).
func TestHandler_ThirdPartyLicenses(t *testing.T) {
	res := get(t, Handler(), "GET", "/third-party-licenses.txt", "")
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /third-party-licenses.txt: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, pkg := range []string{"\npreact ", "\nuplot ", "\nmqtt ", "Bundled inside MQTT.js"} {
		if !strings.Contains(string(b), pkg) {
			t.Fatalf("third-party-licenses.txt does not name %q", strings.TrimSpace(pkg))
		}
	}
}

func TestHandler_RefusesTheRest(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/nope", "/assets/", "/.source-sha256", "/index.html/x"} {
		if res := get(t, h, "GET", p, ""); res.StatusCode != 404 {
			t.Fatalf("GET %s: %d, want 404", p, res.StatusCode)
		}
	}
	if res := get(t, h, "POST", "/", ""); res.StatusCode != 405 || res.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST /: %d Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
	res := get(t, h, "HEAD", "/", "")
	if b, _ := io.ReadAll(res.Body); res.StatusCode != 200 || len(b) != 0 || res.Header.Get("Content-Length") == "" {
		t.Fatalf("HEAD /: %d, %d body bytes, Content-Length %q", res.StatusCode, len(b), res.Header.Get("Content-Length"))
	}
	if res := get(t, h, "GET", "/", "gzip;q=0"); res.Header.Get("Content-Encoding") != "" {
		t.Fatalf("gzip;q=0 got Content-Encoding %q", res.Header.Get("Content-Encoding"))
	}
}
