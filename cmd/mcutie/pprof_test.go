package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPprofEndpoints checks that --pprof's handlers answer on a real HTTP
// server with real profiles, and that without them the paths are absent.
func TestPprofEndpoints(t *testing.T) {
	get := func(srv *httptest.Server, path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: reading the body: %v", path, err)
		}
		return resp.StatusCode, string(b)
	}

	mux := http.NewServeMux()
	registerPprof(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if code, body := get(srv, "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile:") {
		t.Fatalf("goroutine profile: status %d, body %.80q", code, body)
	}
	if code, body := get(srv, "/debug/pprof/heap?debug=1"); code != 200 || !strings.Contains(body, "heap profile:") {
		t.Fatalf("heap profile: status %d, body %.80q", code, body)
	}
	if code, body := get(srv, "/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("index: status %d, body %.80q", code, body)
	}

	plain := httptest.NewServer(http.NewServeMux())
	defer plain.Close()
	if code, _ := get(plain, "/debug/pprof/heap"); code != http.StatusNotFound {
		t.Fatalf("without --pprof: /debug/pprof/heap status %d, want 404", code)
	}
}
