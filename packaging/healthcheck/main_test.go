package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !ready {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if code := check(srv.URL, time.Second, io.Discard); code != 0 {
		t.Errorf("ready endpoint: exit %d, want 0", code)
	}
	ready = false
	if code := check(srv.URL, time.Second, io.Discard); code != 1 {
		t.Errorf("503: exit %d, want 1", code)
	}
	srv.Close()
	if code := check(srv.URL, time.Second, io.Discard); code != 1 {
		t.Errorf("nothing listening: exit %d, want 1", code)
	}
}
