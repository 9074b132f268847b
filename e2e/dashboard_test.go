package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/internal/cdp"
)

// The web dashboard (admin/ui) in headless Chromium against the real
// binary: MQTT over TCP and WebSocket, the admin API and the dashboard on
// --admin-listen with a token. It logs in, watches a real mosquitto_sub
// appear in the clients table, opens its session, kicks it (mosquitto_sub
// reads DISCONNECT 0x98, Administrative action: MQTT-3.14.2-1's reason
// code from the server), publishes from the form and sees the message in
// the live panel (MQTT.js over the ws:// listener found through
// /api/v1/listeners), finds it in the retained topic tree, and adds and
// removes a ban. Each view is saved as a PNG in $MCUTIE_SCREENSHOTS (a
// temporary directory when unset); docs/img/ holds a set.
func TestDashboard_Browser(t *testing.T) {
	chromium := cdp.Find()
	if chromium == "" {
		t.Skip("chromium is not installed (Debian: apt-get install chromium); the dashboard test needs it")
	}
	subBin := mosqBin(t, "mosquitto_sub")
	shots := os.Getenv("MCUTIE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}

	const token = "dashboard-test-token"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mqttPort, wsPort, adminPort := freePort(t), freePort(t), freePort(t)
	adminAddr := fmt.Sprintf("127.0.0.1:%d", adminPort)
	p := durStartProc(t, t.TempDir(), mqttPort,
		"--listen", fmt.Sprintf("ws://127.0.0.1:%d", wsPort),
		"--admin-listen", adminAddr, "--admin-token-file", tokenFile,
		"--allow-anonymous") // a ws:// listener turns the loopback default off
	base := "http://" + adminAddr + "/"

	// Without the token the API refuses; the page itself is public.
	if res, err := http.Get(base + "api/v1/stats"); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /api/v1/stats without a token: %v %v", res, err)
	}

	// Some devices: a few sensors (retained readings), and one publishing
	// a little traffic all along so the charts move.
	for i, topic := range []string{"dash/room1/temperature", "dash/room1/humidity", "dash/room2/temperature", "dash/lobby/door", "plant/line-a/speed"} {
		c := dashClient(t, p.Addr, fmt.Sprintf("sensor-%02d", i+1))
		if tok := c.Publish(topic, 1, true, fmt.Sprintf(`{"value": %d.%d}`, 20+i, i*7%10)); !tok.WaitTimeout(v3Wait) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	for id, filter := range map[string]string{"line-a-monitor": "plant/#", "line-a-logger": "plant/line-a/+"} {
		c := dashClient(t, p.Addr, id)
		if tok := c.Subscribe(filter, 0, func(mqtt.Client, mqtt.Message) {}); !tok.WaitTimeout(v3Wait) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", filter, tok.Error())
		}
	}
	traffic := dashClient(t, p.Addr, "traffic-gen")
	stopTraffic := make(chan struct{})
	var trafficDone sync.WaitGroup
	trafficDone.Add(1)
	go func() {
		defer trafficDone.Done()
		for i := 0; ; i++ {
			select {
			case <-stopTraffic:
				return
			case <-time.After(20 * time.Millisecond):
			}
			// Retained QoS 1: each one is a store commit (the latency chart).
			traffic.Publish("plant/line-a/tick", 1, true, fmt.Sprint(i))
		}
	}()
	defer func() { close(stopTraffic); trafficDone.Wait() }()

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	b, err := cdp.Start(ctx, chromium)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	page, err := b.NewPage(ctx, 1280, 820)
	if err != nil {
		t.Fatal(err)
	}
	d := &dashPage{t: t, ctx: ctx, p: page, b: b, dir: shots}
	defer func() {
		if t.Failed() {
			t.Logf("browser console:\n%s\nbroker log:\n%s", strings.Join(b.Logs(), "\n"), p.log())
		}
	}()

	// Login.
	d.navigate(base)
	d.waitFor(`document.querySelector("#login-form input[name=token]")`)
	d.shot("login")
	d.fill(`#login-form input[name=token]`, "wrong")
	d.click(`#login-form button[type=submit]`)
	d.waitFor(`document.querySelector("#login-form .error")?.textContent.includes("not accepted")`)
	d.fill(`#login-form input[name=token]`, token)
	d.click(`#login-form button[type=submit]`)
	d.waitFor(`document.querySelector("#stat-tiles")`)
	var stored string
	d.eval(`sessionStorage.getItem("mcutie.token")`, &stored)
	if stored != token {
		t.Fatalf("token in sessionStorage: %q", stored)
	}

	// A real mosquitto_sub (MQTT 5, so it reads the DISCONNECT's reason).
	sub := startDashSub(t, subBin, p.Addr, "dash-watcher", "dash/#")
	d.navigate(base + "#/clients")
	d.waitFor(`document.querySelector('#clients-table tr[data-client="dash-watcher"]')`)
	d.waitFor(`document.querySelector('#clients-table tr[data-client="sensor-05"]')`)
	d.shot("clients")
	d.fill(`#client-search`, "watch")
	d.waitFor(`document.querySelectorAll('#clients-table tbody tr').length === 1 && document.querySelector('#clients-table tr[data-client="dash-watcher"]')`)

	// Its session.
	d.click(`#clients-table tr[data-client="dash-watcher"] a`)
	d.waitFor(`document.querySelector("#client-subs")?.textContent.includes("dash/#") && document.querySelector("#client-detail")?.textContent.includes("5.0")`)
	d.shot("client")

	// Kick it from the table (the button asks once more).
	d.navigate(base + "#/clients")
	d.fill(`#client-search`, "dash-watcher")
	d.waitFor(`document.querySelectorAll('#clients-table tbody tr').length === 1 && document.querySelector('#clients-table tr[data-client="dash-watcher"] button')`)
	d.click(`#clients-table tr[data-client="dash-watcher"] button`)
	d.waitFor(`document.querySelector('#clients-table tr[data-client="dash-watcher"] button.armed')`)
	d.click(`#clients-table tr[data-client="dash-watcher"] button`)
	sub.waitDisconnect(t, "Received DISCONNECT (152)") // 0x98
	d.waitFor(`!document.querySelector('#clients-table tr[data-client="dash-watcher"]')`)

	// Publish from the form, received by the live panel over ws://.
	d.navigate(base + "#/publish")
	d.waitFor(fmt.Sprintf(`document.querySelector("#live-status")?.textContent.includes("ws://127.0.0.1:%d/mqtt")`, wsPort))
	d.fill(`#live-form input[name=filter]`, "dash/#")
	d.click(`#live-form button[type=submit]`)
	d.waitFor(`document.querySelector("#live-status")?.textContent.startsWith("subscribed to dash/#")`)
	d.waitFor(`document.querySelector("#live-messages")?.textContent.includes("dash/room1/humidity")`) // retained, on subscribing
	const hello = "hello from the dashboard"
	d.fill(`#publish-form input[name=topic]`, "dash/greeting")
	d.fill(`#publish-form textarea[name=payload]`, hello)
	d.fill(`#publish-form select[name=qos]`, "1")
	d.click(`#publish-form input[name=retain]`)
	d.click(`#publish-form button[type=submit]`)
	d.waitFor(`document.querySelector("#publish-note")?.textContent.includes("dash/greeting")`)
	d.waitFor(fmt.Sprintf(`[...document.querySelectorAll("#live-messages tbody tr")].some(r => r.textContent.includes("dash/greeting") && r.textContent.includes(%q))`, hello))
	d.shot("publish")

	// The retained topic tree holds it.
	d.navigate(base + "#/topics")
	d.waitFor(`document.querySelector('#topic-tree [data-topic="dash/greeting"]')`)
	d.click(`#topic-tree [data-topic="dash/room1/temperature"]`)
	d.waitFor(`document.querySelector("#retained-detail")?.textContent.includes('"value": 20.0')`)
	d.click(`#topic-tree [data-topic="dash/greeting"]`)
	d.waitFor(fmt.Sprintf(`document.querySelector("#retained-detail")?.textContent.includes(%q)`, hello))
	d.shot("topics")

	// Bans: add one, then remove it.
	d.navigate(base + "#/bans")
	d.waitFor(`document.querySelector("#ban-form")`)
	d.fill(`#ban-form input[name=value]`, "evil-device")
	d.fill(`#ban-form input[name=duration]`, "10m")
	d.click(`#ban-form button[type=submit]`)
	d.waitFor(`document.querySelector('#bans-table tr[data-ban="evil-device"]')`)
	d.fill(`#ban-form select[name=kind]`, "address")
	d.fill(`#ban-form input[name=value]`, "192.0.2.7")
	d.fill(`#ban-form input[name=duration]`, "24h")
	d.click(`#ban-form button[type=submit]`)
	d.waitFor(`document.querySelector('#bans-table tr[data-ban="192.0.2.7"]')`)
	d.shot("bans")
	if bans := apiGet(t, base, token, "bans"); !strings.Contains(bans, `"evil-device"`) {
		t.Fatalf("GET /api/v1/bans after adding: %s", bans)
	}
	d.click(`#bans-table tr[data-ban="evil-device"] button`)
	d.waitFor(`document.querySelector('#bans-table tr[data-ban="evil-device"] button.armed')`)
	d.click(`#bans-table tr[data-ban="evil-device"] button`)
	d.waitFor(`!document.querySelector('#bans-table tr[data-ban="evil-device"]')`)
	if bans := apiGet(t, base, token, "bans"); strings.Contains(bans, `"evil-device"`) {
		t.Fatalf("GET /api/v1/bans after removing: %s", bans)
	}

	// The overview last, with a few seconds of history in its charts.
	d.navigate(base + "#/")
	d.waitFor(`Number(document.querySelector(".charts")?.dataset.samples) >= 12`)
	d.waitFor(`document.querySelector(".charts").textContent.includes("Store commit latency (mean)")`) // store_commits reported
	d.waitFor(`[...document.querySelectorAll(".tile")].some(t => t.textContent.startsWith("Messages in/s") && parseFloat(t.querySelector(".value").textContent.replace(/,/g, "")) > 0)`)
	d.shot("overview")

	// Log out: the token is forgotten.
	d.click(`nav .logout`)
	d.waitFor(`document.querySelector("#login-form") && sessionStorage.getItem("mcutie.token") === null`)
}

// dashClient connects a 3.1.1 client that the test disconnects at its end.
func dashClient(t *testing.T, addr, id string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetAutoReconnect(false).SetConnectTimeout(v3Wait))
	if tok := c.Connect(); !tok.WaitTimeout(v3Wait) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

func apiGet(t *testing.T, base, token, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"api/v1/"+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v any
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /api/v1/%s: %d %v", path, res.StatusCode, err)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// dashPage wraps a cdp.Page with the test's context and failure.
type dashPage struct {
	t   *testing.T
	ctx context.Context
	p   *cdp.Page
	b   *cdp.Browser
	dir string
}

// step bounds one wait: generous, as chromium on 2 busy cores is slow.
const dashStep = 30 * time.Second

func (d *dashPage) navigate(url string) {
	d.t.Helper()
	if err := d.p.Navigate(d.ctx, url); err != nil {
		d.t.Fatal(err)
	}
}

func (d *dashPage) waitFor(expr string) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, dashStep)
	defer cancel()
	if err := d.p.WaitFor(ctx, expr); err != nil {
		if png, err := d.p.Screenshot(d.ctx, true); err == nil {
			_ = os.WriteFile(filepath.Join(d.dir, "dashboard-failed.png"), png, 0o644)
		}
		d.t.Fatalf("%v (screenshot: %s)", err, filepath.Join(d.dir, "dashboard-failed.png"))
	}
}

func (d *dashPage) eval(expr string, out any) {
	d.t.Helper()
	if err := d.p.Eval(d.ctx, expr, out); err != nil {
		d.t.Fatal(err)
	}
}

// fill sets a form field as typing would: the value, then input and
// change events (Preact listens to those).
func (d *dashPage) fill(sel, value string) {
	d.t.Helper()
	d.waitFor(fmt.Sprintf(`document.querySelector(%q)`, sel))
	d.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q;
		e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); })()`, sel, value), nil)
}

func (d *dashPage) click(sel string) {
	d.t.Helper()
	d.waitFor(fmt.Sprintf(`document.querySelector(%q)`, sel))
	d.eval(fmt.Sprintf(`document.querySelector(%q).click()`, sel), nil)
}

// shot saves the whole page as <name>.png.
func (d *dashPage) shot(name string) {
	d.t.Helper()
	png, err := d.p.Screenshot(d.ctx, true)
	if err != nil {
		d.t.Fatal(err)
	}
	path := filepath.Join(d.dir, "dashboard-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		d.t.Fatal(err)
	}
	d.t.Logf("screenshot %s", path)
}

// dashSub is a mosquitto_sub -V 5 -d whose output lines are kept.
type dashSub struct {
	mu    sync.Mutex
	lines []string
	done  chan struct{}
	err   error
}

func startDashSub(t *testing.T, bin, addr, id, filter string) *dashSub {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	stdbuf, err := exec.LookPath("stdbuf")
	if err != nil {
		t.Skip("stdbuf not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, stdbuf, "-oL", bin, "-V", "5", "-d", "-h", host, "-p", port, "-i", id, "-t", filter)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto_sub: %v", err)
	}
	s := &dashSub{done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			if len(s.lines) < 1000 {
				s.lines = append(s.lines, sc.Text())
			}
			s.mu.Unlock()
		}
		s.err = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-s.done })
	return s
}

// waitDisconnect waits for mosquitto_sub to print want and exit.
func (s *dashSub) waitDisconnect(t *testing.T, want string) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(dashStep):
		s.mu.Lock()
		defer s.mu.Unlock()
		t.Fatalf("mosquitto_sub still running %v after the kick; printed:\n%s", dashStep, strings.Join(s.lines, "\n"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if strings.Contains(l, want) {
			return
		}
	}
	t.Fatalf("mosquitto_sub exited (%v) without printing %q:\n%s", s.err, want, strings.Join(s.lines, "\n"))
}

// On a loopback listener without a token (allowed there, as anonymous
// MQTT is), the dashboard opens straight on the overview with no login;
// with --admin it shares the --metrics-listen endpoint with /metrics.
func TestDashboard_LoopbackWithoutToken(t *testing.T) {
	chromium := cdp.Find()
	if chromium == "" {
		t.Skip("chromium is not installed (Debian: apt-get install chromium); the dashboard test needs it")
	}
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := durStartProc(t, t.TempDir(), freePort(t), "--metrics-listen", metricsAddr, "--admin")
	base := "http://" + metricsAddr + "/"
	if res, err := http.Get(base + "metrics"); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /metrics beside the dashboard: %v %v", res, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := cdp.Start(ctx, chromium)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	page, err := b.NewPage(ctx, 1280, 820)
	if err != nil {
		t.Fatal(err)
	}
	d := &dashPage{t: t, ctx: ctx, p: page, b: b, dir: t.TempDir()}
	defer func() {
		if t.Failed() {
			t.Logf("browser console:\n%s\nbroker log:\n%s", strings.Join(b.Logs(), "\n"), p.log())
		}
	}()
	d.navigate(base)
	d.waitFor(`document.querySelector("#stat-tiles")`)
	var login bool
	d.eval(`!!document.querySelector("#login-form") || !!document.querySelector("nav .logout")`, &login)
	if login {
		t.Fatal("the dashboard asks for a token on a loopback listener that needs none")
	}
	// No WebSocket listener: the live panel says how to get one.
	d.navigate(base + "#/publish")
	d.waitFor(`document.querySelector("#live-none")?.textContent.includes("--listen ws://")`)
}
