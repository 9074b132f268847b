package e2e

import (
	_ "embed"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/reactor"
)

// MQTT.js in headless Chromium, publishing and receiving through mcutie
// over ws://. The page is served by the test; MQTT.js is vendored
// (testdata/mqtt.min.js), so nothing is fetched at test time. The page
// reports what it sees with POST /report, which the test waits on.

//go:embed testdata/mqtt.min.js
var mqttJS []byte

const browserPage = `<!doctype html>
<html><head><meta charset="utf-8"><script src="/mqtt.min.js"></script></head>
<body><pre id="log"></pre><script>
function report(s) {
  document.getElementById("log").textContent += s + "\n";
  fetch("/report", {method: "POST", body: s});
}
for (const v of [4, 5]) {
  const client = mqtt.connect("%s", {protocolVersion: v, clientId: "browser-" + v, reconnectPeriod: 0, connectTimeout: 10000});
  client.on("connect", () => {
    client.subscribe("browser/in", {qos: 1}, (err) => { report(err ? "error: " + err.message : "subscribed " + v); });
  });
  client.on("message", (topic, payload) => {
    report("got " + v + " " + topic + " " + payload.toString());
    client.publish("browser/out", "from-browser-v" + v, {qos: 1}, (err) => { if (err) report("error: " + err.message); });
  });
  client.on("error", (err) => report("error: " + err.message));
}
</script></body></html>`

func chromiumBin(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (Debian: apt-get install chromium); the browser test needs it")
	return ""
}

// Two MQTT.js clients in one page, MQTT 3.1.1 (protocolVersion 4) and 5,
// each subscribing, receiving a message a Go client publishes over TCP
// and publishing one back.
func TestBrowser_MQTTjsOverWebSocket(t *testing.T) {
	bin := chromiumBin(t)
	tb := startTransport(t, reactor.TLSOptions{}, "ws", "tcp")
	reports := make(chan string, 16)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, browserPage, "ws://"+tb.Addrs["ws"]+"/mqtt")
	})
	mux.HandleFunc("/mqtt.min.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		_, _ = w.Write(mqttJS)
	})
	mux.HandleFunc("/report", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reports <- string(b)
	})
	web := httptest.NewServer(mux)
	defer web.Close()

	// A Go client on plain TCP at the other end.
	sink := newV3Sink()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + tb.Addrs["tcp"]).SetClientID("go-peer").
		SetAutoReconnect(false).SetConnectTimeout(v3Wait))
	if tok := c.Connect(); !tok.WaitTimeout(v3Wait) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Subscribe("browser/out", 1, sink.handler); !tok.WaitTimeout(v3Wait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--user-data-dir="+t.TempDir(),
		"--remote-debugging-port=0", // keeps the browser open until the test ends it
		web.URL+"/")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out lockedBuilder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // chromium and its helpers: our own process group
		_ = cmd.Wait()
	}()

	const budget = 30 * time.Second // chromium's first start is slow on 2 cores
	expect := func(want ...string) {
		t.Helper()
		deadline := time.After(budget)
		missing := map[string]bool{}
		for _, w := range want {
			missing[w] = true
		}
		for len(missing) > 0 {
			select {
			case got := <-reports:
				if strings.HasPrefix(got, "error") {
					t.Fatalf("browser: %s", got)
				}
				delete(missing, got)
			case <-deadline:
				t.Fatalf("browser did not report %v within %v; chromium output:\n%s", missing, budget, out.String())
			}
		}
	}
	expect("subscribed 4", "subscribed 5")
	if tok := c.Publish("browser/in", 1, false, "from-go"); !tok.WaitTimeout(v3Wait) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	expect("got 4 browser/in from-go", "got 5 browser/in from-go")
	got := map[string]bool{}
	for _, m := range sink.waitN(t, 2) {
		got[m.Payload] = true
	}
	if !got["from-browser-v4"] || !got["from-browser-v5"] {
		t.Fatalf("Go client got %v", got)
	}
	tb.Log.waitFor(t, "client connected", "client=browser-4", "version=4")
	tb.Log.waitFor(t, "client connected", "client=browser-5", "version=5")
}

// lockedBuilder collects chromium's output from its two pipes.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
