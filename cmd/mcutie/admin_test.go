package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAdminRefusedWithoutTokenOffLoopback: the management API without a
// token on a listener other hosts can reach stops the start (exit 2),
// whether on its own listener or on --metrics-listen.
func TestAdminRefusedWithoutTokenOffLoopback(t *testing.T) {
	t.Setenv(adminTokenEnv, "")
	for _, args := range [][]string{
		{"--admin-listen", "0.0.0.0:0"},
		{"--admin", "--metrics-listen", "0.0.0.0:0"},
		{"--admin", "--metrics-listen", ""}, // nowhere to serve it
		{"--admin", "--admin-token", "a", "--admin-token-file", "/dev/null"},
	} {
		all := append([]string{"--listen", "tcp://" + freeAddr(t), "--store", "memory", "--log-level", "error"}, args...)
		if code := run(all); code != 2 {
			t.Fatalf("%v: exit %d, want 2", args, code)
		}
	}
}

// runServing runs mcutie with args until stop is called; it waits for
// url to answer (any status).
func runServing(t *testing.T, url string, args ...string) (stop func()) {
	t.Helper()
	code := make(chan int, 1)
	go func() { code <- run(args) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case c := <-code:
			t.Fatalf("run exited with %d before %s answered", c, url)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not answering within 10s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-code:
			if c != 0 {
				t.Fatalf("exit code %d after SIGTERM, want 0", c)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("run did not return within 15s of SIGTERM")
		}
	}
}

// waitListed polls GET /api/v1/listeners until it lists some.
func waitListed(t *testing.T, url, token string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(t, url, token)
		if code != 200 || !strings.Contains(body, `"listeners":[]`) || time.Now().After(deadline) {
			return code, body
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminServedWithToken: --admin on --metrics-listen with the token
// from the environment, and --admin-listen with the token from a file;
// GET /api/v1/config masks the secrets.
func TestAdminServedWithToken(t *testing.T) {
	mqttAddr, httpAddr := freeAddr(t), freeAddr(t)
	t.Setenv(adminTokenEnv, "env-token")
	stop := runServing(t, "http://"+httpAddr+"/healthz", "--listen", "tcp://"+mqttAddr, "--metrics-listen", httpAddr,
		"--store", "memory", "--log-level", "error", "--admin", "--redis-password", "hunter2")
	if code, _ := get(t, "http://"+httpAddr+"/api/v1/stats", ""); code != 401 {
		t.Fatalf("no token: %d, want 401", code)
	}
	if code, body := get(t, "http://"+httpAddr+"/api/v1/stats", "env-token"); code != 200 || !strings.Contains(body, `"node_id"`) {
		t.Fatalf("stats: %d %s", code, body)
	}
	code, body := get(t, "http://"+httpAddr+"/api/v1/config", "env-token")
	if code != 200 || strings.Contains(body, "hunter2") || !strings.Contains(body, `{"name":"redis-password","value":"********","default":"","changed":true,"secret":true}`) {
		t.Fatalf("config: %d %s", code, body)
	}
	// The listeners are listed once they are bound (/readyz 200 a moment before).
	code, body = waitListed(t, "http://"+httpAddr+"/api/v1/listeners", "env-token")
	if code != 200 || !strings.Contains(body, `"kind":"tcp","address":"`+mqttAddr+`"`) || !strings.Contains(body, `"kind":"metrics","address":"`+httpAddr+`"`) {
		t.Fatalf("listeners: %d %s", code, body)
	}
	if code, body := get(t, "http://"+httpAddr+"/metrics", ""); code != 200 || !strings.Contains(body, `mcutie_admin_requests_total{class="4xx"} 1`) {
		t.Fatalf("metrics: %d, admin counters missing", code)
	}
	stop()

	// Its own listener, the token from a file; --metrics-listen off.
	os.Unsetenv(adminTokenEnv) // restored by t.Setenv's cleanup
	adminAddr := freeAddr(t)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stop = runServing(t, "http://"+adminAddr+"/api/v1/stats", "--listen", "tcp://"+freeAddr(t), "--metrics-listen", "",
		"--store", "memory", "--log-level", "error", "--admin-listen", adminAddr, "--admin-token-file", file)
	if code, _ := get(t, "http://"+adminAddr+"/api/v1/stats", "env-token"); code != 401 {
		t.Fatalf("another token: %d, want 401", code)
	}
	if code, body := waitListed(t, "http://"+adminAddr+"/api/v1/listeners", "file-token"); code != 200 || !strings.Contains(body, `"kind":"admin","address":"`+adminAddr+`"`) {
		t.Fatalf("listeners: %d %s", code, body)
	}
	stop()
}
