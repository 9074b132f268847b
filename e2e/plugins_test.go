package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/hooks/aggregate"
	"github.com/mcutie/mcutie/hooks/httpauth"
	"github.com/mcutie/mcutie/hooks/rewrite"
	"github.com/mcutie/mcutie/hooks/webhook"
)

// The built-in plugins (hooks/httpauth, webhook, aggregate, rewrite)
// through a real broker, real clients (paho v5 and 3.1.1) and real HTTP
// servers (httptest); and the binary configured by --plugins.

// authService is an HTTP auth/ACL service: user "ann" with password "pw"
// may connect and use topics under "ann/"; "banned" is refused as banned;
// every other password is wrong.
type authService struct {
	mu    sync.Mutex
	asked []string // "action clientid topic" of the ACL requests
}

func (s *authService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m map[string]string
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	verdict := func(result, reason string) {
		_ = json.NewEncoder(w).Encode(map[string]string{"result": result, "reason": reason})
	}
	if strings.HasSuffix(r.URL.Path, "/acl") {
		s.mu.Lock()
		s.asked = append(s.asked, m["action"]+" "+m["clientid"]+" "+m["topic"])
		s.mu.Unlock()
		if m["username"] == "ann" && strings.HasPrefix(m["topic"], "ann/") {
			verdict("allow", "")
			return
		}
		verdict("deny", "")
		return
	}
	switch {
	case m["username"] == "ann" && m["password"] == "pw":
		verdict("allow", "")
	case m["username"] == "banned":
		verdict("deny", "banned")
	default:
		verdict("deny", "bad_credentials")
	}
}

func (s *authService) wasAsked(q string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.asked {
		if a == q {
			return true
		}
	}
	return false
}

// plugin(pkg.New(cfg))(t) is the plugin, or the test fails with New's
// error.
func plugin[T hooks.Hook](h T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// HTTP auth: the service's verdict decides each CONNECT, its reason the
// CONNACK code (v5 and 3.1.1); the ACL answers a first SUBSCRIBE or
// PUBLISH on a topic with the default (deny) while it asks the service,
// and the service's verdict from then on.
func TestPlugins_HTTPAuth(t *testing.T) {
	t.Parallel()
	svc := &authService{}
	srv := httptest.NewServer(svc)
	defer srv.Close()
	ha := plugin(httpauth.New(httpauth.Config{URL: srv.URL + "/connect", ACLURL: srv.URL + "/acl", Logger: quietLog()}))(t)
	tb := start(t, broker.Options{Hooks: newRegistry(t, hooks.Options{}, ha)})

	for _, tc := range []struct {
		user, pass string
		code       byte
	}{{"ann", "nope", 0x86}, {"banned", "", 0x8A}} {
		_, ack, err := v5TryConnect(t, tb.Addr, &paho.Connect{ClientID: "ha-" + tc.user, CleanStart: true,
			Username: tc.user, UsernameFlag: true, Password: []byte(tc.pass), PasswordFlag: true})
		if err == nil || ack == nil || ack.ReasonCode != tc.code {
			t.Fatalf("%s: %v %+v; want CONNACK %#x", tc.user, err, ack, tc.code)
		}
	}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + tb.Addr).SetClientID("ha-v3").SetUsername("ann").SetPassword("nope").
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(v5Timeout)
	c3 := mqtt.NewClient(o)
	if tok := c3.Connect(); !tok.WaitTimeout(v5Timeout) || tok.Error() == nil {
		t.Fatal("3.1.1 client with a wrong password connected")
	} else if code := tok.(*mqtt.ConnectToken).ReturnCode(); code != 4 {
		t.Fatalf("3.1.1 CONNACK %d; want 4 (bad user name or password)", code)
	}

	ann := func(id string) *v5Paho {
		c, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: id, CleanStart: true, Username: "ann", UsernameFlag: true, Password: []byte("pw"), PasswordFlag: true})
		return c
	}
	sub := ann("ha-sub")
	// paho returns the SUBACK or PUBACK with an error when it refuses.
	subscribe := func(filter string) byte {
		ack, _ := sub.Subscribe(t.Context(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
		if ack == nil {
			t.Fatalf("subscribe %s: no SUBACK", filter)
		}
		return ack.Reasons[0]
	}
	if code := subscribe("ann/#"); code != 0x87 {
		t.Fatalf("first SUBSCRIBE (a miss) got %#x; want 0x87", code)
	}
	v5Wait(t, "the ACL lookup", func() bool { return svc.wasAsked("subscribe ha-sub ann/#") })
	v5Wait(t, "the SUBSCRIBE allowed from the cache", func() bool { return subscribe("ann/#") == 1 })
	if code := subscribe("bob/#"); code != 0x87 {
		t.Fatalf("bob/#: %#x", code)
	}

	pub := ann("ha-pub")
	publish := func(topic string) byte {
		r, _ := pub.Publish(t.Context(), &paho.Publish{Topic: topic, QoS: 1, Payload: []byte("x")})
		if r == nil {
			t.Fatalf("publish %s: no PUBACK", topic)
		}
		return r.ReasonCode
	}
	if code := publish("ann/t"); code != 0x87 {
		t.Fatalf("first PUBLISH (a miss) got %#x; want 0x87", code)
	}
	v5Wait(t, "the PUBLISH allowed from the cache", func() bool { return publish("ann/t") == 0 })
	if p := sub.recv(t); p.Topic != "ann/t" {
		t.Fatalf("got %s", p.Topic)
	}
	publish("bob/t")
	v5Wait(t, "the ACL lookup", func() bool { return svc.wasAsked("publish ha-pub bob/t") })
	time.Sleep(50 * time.Millisecond) // the verdict is cached just after the answer
	if code := publish("bob/t"); code != 0x87 {
		t.Fatalf("a cached deny: %#x", code)
	}
	sub.quiet(t)
}

// eventSink is a webhook endpoint keeping every event it is sent; while
// hang is set it answers nothing until the request is abandoned.
type eventSink struct {
	mu     sync.Mutex
	events []map[string]any
	hang   bool
}

func (s *eventSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	hang := s.hang
	s.mu.Unlock()
	if hang {
		// The body read first: only then does net/http notice the
		// client giving up (and cancel the request's context).
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
		return
	}
	var b []map[string]any
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.events = append(s.events, b...)
	s.mu.Unlock()
}

// lines are the events as "event clientid topic reason".
func (s *eventSink) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.events {
		l := fmt.Sprint(e["event"], " ", e["clientid"])
		if tp, ok := e["topic"]; ok {
			l += fmt.Sprint(" ", tp)
		}
		if r, ok := e["reason"]; ok {
			l += fmt.Sprint(" ", r)
		}
		out = append(out, l)
	}
	return out
}

// waitLines waits until want appear in the sink in this order.
func (s *eventSink) waitLines(t *testing.T, want ...string) {
	t.Helper()
	waitInOrder(t, "webhook events", s.lines, want...)
}

// The webhook posts each event of a v5 and a 3.1.1 client's life, in
// batches.
func TestPlugins_Webhook(t *testing.T) {
	t.Parallel()
	sink := &eventSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	wh := plugin(webhook.New(webhook.Config{URL: srv.URL, BatchSize: 4, Interval: 50 * time.Millisecond, IncludePayload: true, Logger: quietLog()}))(t)
	tb := start(t, broker.Options{Hooks: newRegistry(t, hooks.Options{}, wh)})
	c, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "wh-5", CleanStart: true})
	c.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "wh/#", QoS: 1}}})
	c.publish(t, &paho.Publish{Topic: "wh/a", QoS: 1, Payload: []byte("hi")})
	c.recv(t)
	if _, err := c.Unsubscribe(t.Context(), &paho.Unsubscribe{Topics: []string{"wh/#"}}); err != nil {
		t.Fatal(err)
	}
	_ = c.Disconnect(&paho.Disconnect{})
	wh5 := []string{
		"session_created wh-5",
		"connected wh-5",
		"subscribed wh-5 wh/#",
		"published wh-5 wh/a",
		"unsubscribed wh-5 wh/#",
		"disconnected wh-5 client_disconnected",
		"session_terminated wh-5 cleaned",
	}
	// Disconnect returns once the packet is written: the broker may not
	// have ended wh-5 yet, and wh-3 may land on the other loop.
	sink.waitLines(t, wh5...)
	c3, _ := v3Paho(t, tb.Addr, "wh-3", true, nil, nil)
	v3Pub(t, c3, "wh/b", 0, false, "yo")
	c3.Disconnect(0)
	sink.waitLines(t, append(wh5,
		"connected wh-3",
		"published wh-3 wh/b",
		"session_terminated wh-3 cleaned", // its disconnected reason depends on paho's timing
	)...)
	sink.mu.Lock()
	for _, e := range sink.events {
		if e["event"] == "published" && e["topic"] == "wh/a" && (e["payload"] != "aGk=" || e["qos"] != 1.0 || e["origin"] != "client") {
			t.Errorf("published event %v", e)
		}
		if e["event"] == "connected" && e["clientid"] == "wh-3" && e["protocol"] != 4.0 {
			t.Errorf("connected event %v", e)
		}
	}
	sink.mu.Unlock()
}

// An endpoint that hangs costs events, never the broker's pace: 2,000
// messages go through while the webhook's queue of 50 overflows, and the
// drops are counted.
func TestPlugins_WebhookHungEndpoint(t *testing.T) {
	t.Parallel()
	sink := &eventSink{hang: true}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	wh := plugin(webhook.New(webhook.Config{URL: srv.URL, Events: []string{"published"}, BatchSize: 10, QueueSize: 50,
		Timeout: 200 * time.Millisecond, Retries: -1, Logger: quietLog()}))(t)
	tb := start(t, broker.Options{Hooks: newRegistry(t, hooks.Options{}, wh)})
	sub, _ := v5RawConnect(t, tb.Addr, "whh-sub", nil)
	sub.subscribe(0, codec.Subscription{Filter: []byte("whh/t")})
	pub, _ := v5RawConnect(t, tb.Addr, "whh-pub", nil)
	var batch []byte
	for i := range 2000 {
		p := codec.Publish{Topic: []byte("whh/t"), Payload: []byte(fmt.Sprint(i))}
		batch = p.Append(batch, codec.V5)
	}
	start := time.Now()
	pub.send(batch)
	for i := range 2000 {
		if p, ok := sub.next(v5Timeout).(*codec.Publish); !ok || string(p.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d: %+v", i, p)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("2,000 messages took %v with the webhook's endpoint hung", d)
	}
	if st := wh.Stats(); st.Dropped < 2000-50-20 || st.Queued+st.Dropped != 2000 {
		t.Fatalf("webhook stats %+v", st)
	}
	sink.mu.Lock()
	sink.hang = false // let Stop's last send through
	sink.mu.Unlock()
}

// Aggregation: a count window of plain numbers and a time window of a
// JSON field, published by the broker on the output topics to a 3.1.1 and
// a v5 subscriber; other messages pass.
func TestPlugins_Aggregate(t *testing.T) {
	t.Parallel()
	ag := plugin(aggregate.New(aggregate.Config{Logger: quietLog(), Rules: []aggregate.Rule{
		{Filter: "ag/+/temp", Output: "agstats/temp", Count: 4},
		{Filter: "ag/json/#", Output: "agstats/json", Window: 300 * time.Millisecond, Field: "m.v", Functions: []string{"sum", "count"}, QoS: 1},
	}}))(t)
	tb := start(t, broker.Options{Hooks: newRegistry(t, hooks.Options{}, ag)})
	ag.SetPublisher(tb.B)
	sink := newV3Sink()
	c3, _ := v3Paho(t, tb.Addr, "ag-sub3", true, sink, nil)
	v3Sub(t, c3, "agstats/temp", 0)
	v3Sub(t, c3, "ag/+/temp", 0)
	sub5, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "ag-sub5", CleanStart: true})
	sub5.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "agstats/json", QoS: 1}}})
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "ag-pub", CleanStart: true})
	for _, v := range []string{"10", "20", "not a number", "30.5", "-0.5"} {
		pub.publish(t, &paho.Publish{Topic: "ag/k1/temp", QoS: 1, Payload: []byte(v)})
	}
	got := sink.waitN(t, 6) // the 5 messages, passed on, and the result
	var res map[string]any
	for _, m := range got {
		if m.Topic == "agstats/temp" {
			if err := json.Unmarshal([]byte(m.Payload), &res); err != nil {
				t.Fatal(err)
			}
		}
	}
	if res["count"] != 4.0 || res["min"] != -0.5 || res["max"] != 30.5 || res["sum"] != 60.0 || res["avg"] != 15.0 {
		t.Fatalf("result %v", res)
	}
	for _, v := range []string{`{"m":{"v":1.5}}`, `{"m":{"v":2}}`, `{"m":{}}`} {
		pub.publish(t, &paho.Publish{Topic: "ag/json/x", QoS: 0, Payload: []byte(v)})
	}
	p := sub5.recv(t)
	res = nil
	if err := json.Unmarshal(p.Payload, &res); err != nil || p.Topic != "agstats/json" || p.QoS != 1 {
		t.Fatalf("got %s %q QoS %d", p.Topic, p.Payload, p.QoS)
	}
	if res["sum"] != 3.5 || res["count"] != 2.0 || res["avg"] != nil {
		t.Fatalf("result %v", res)
	}
	st, _ := ag.Stats("agstats/json")
	if st.Skipped != 1 || st.Published != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Rewrite: a client's JSON payload arrives at every subscriber with the
// publisher's client id and a timestamp; a text payload is wrapped;
// topics outside the filters pass unchanged.
func TestPlugins_Rewrite(t *testing.T) {
	t.Parallel()
	rw := plugin(rewrite.New(rewrite.Config{Filters: []string{"rw/+/data"}}))(t)
	tb := start(t, broker.Options{Hooks: newRegistry(t, hooks.Options{}, rw)})
	sink := newV3Sink()
	c3, _ := v3Paho(t, tb.Addr, "rw-sub3", true, sink, nil)
	v3Sub(t, c3, "rw/#", 1)
	pub, _ := v5Connect(t, tb.Addr, &paho.Connect{ClientID: "rw-pub", CleanStart: true})
	pub.publish(t, &paho.Publish{Topic: "rw/s1/data", QoS: 1, Payload: []byte(`{"temp":21.5,"clientid":"someone-else"}`)})
	pub.publish(t, &paho.Publish{Topic: "rw/s1/data", QoS: 1, Payload: []byte(`warm`)})
	pub.publish(t, &paho.Publish{Topic: "rw/s1/raw", QoS: 1, Payload: []byte(`{"temp":1}`)})
	got := sink.waitN(t, 3)
	var m map[string]any
	if err := json.Unmarshal([]byte(got[0].Payload), &m); err != nil {
		t.Fatal(err)
	}
	ts, _ := m["ts"].(string)
	if at, err := time.Parse(time.RFC3339Nano, ts); m["clientid"] != "rw-pub" || m["temp"] != 21.5 || err != nil || time.Since(at) > time.Minute {
		t.Fatalf("enriched %q", got[0].Payload)
	}
	if err := json.Unmarshal([]byte(got[1].Payload), &m); err != nil || m["payload"] != "warm" || m["clientid"] != "rw-pub" {
		t.Fatalf("wrapped %q", got[1].Payload)
	}
	if got[2].Payload != `{"temp":1}` {
		t.Fatalf("outside the filters: %q", got[2].Payload)
	}
}

// The binary: --plugins selects and configures the four plugins (HTTP
// auth and the webhook against httptest servers), their metrics are in
// /metrics; a wrong plugins file stops the start with its line.
func TestPlugins_Binary(t *testing.T) {
	svc := &authService{}
	auth := httptest.NewServer(svc)
	defer auth.Close()
	sink := &eventSink{}
	hook := httptest.NewServer(sink)
	defer hook.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "plugins.yaml")
	writeFile := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(fmt.Sprintf(`# the plugins of TestPlugins_Binary
hooks:
  timeout: 3s
plugins:
  - type: httpauth
    url: %s/connect
    timeout: 2s
  - type: rewrite
    filters: [bin/+/data]
  - type: aggregate
    rules:
      - filter: bin/+/data
        field: payload
        output: binstats/data
        count: 2
  - type: webhook
    url: %s
    events: [connected, published]
    batch_size: 1
`, auth.URL, hook.URL))
	metricsPort := freePort(t)
	p := durStartProc(t, dir, freePort(t), "--store", "memory", "--allow-anonymous", "--plugins", file,
		"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", metricsPort))
	defer p.term(t)

	if _, ack, err := v5TryConnect(t, p.Addr, &paho.Connect{ClientID: "bin-bad", CleanStart: true, Username: "banned", UsernameFlag: true}); err == nil || ack == nil || ack.ReasonCode != 0x8A {
		t.Fatalf("banned: %v %+v; want CONNACK 0x8A from httpauth", err, ack)
	}
	cp := func(id string) *paho.Connect {
		return &paho.Connect{ClientID: id, CleanStart: true, Username: "ann", UsernameFlag: true, Password: []byte("pw"), PasswordFlag: true}
	}
	sub, _ := v5Connect(t, p.Addr, cp("bin-sub"))
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "binstats/#"}, {Topic: "bin/+/data"}}})
	pub, _ := v5Connect(t, p.Addr, cp("bin-pub"))
	pub.publish(t, &paho.Publish{Topic: "bin/s/data", QoS: 1, Payload: []byte("4")})
	pub.publish(t, &paho.Publish{Topic: "bin/s/data", QoS: 1, Payload: []byte("6")})
	// rewrite wraps "4" as {"clientid":…,"payload":4,"ts":…}; aggregate,
	// after it, reads the payload field.
	var enriched, stats map[string]any
	for range 3 {
		m := sub.recv(t)
		var v map[string]any
		if err := json.Unmarshal(m.Payload, &v); err != nil {
			t.Fatalf("%s: %q", m.Topic, m.Payload)
		}
		if m.Topic == "binstats/data" {
			stats = v
		} else if enriched == nil {
			enriched = v
		}
	}
	if enriched["clientid"] != "bin-pub" || enriched["payload"] != 4.0 {
		t.Fatalf("rewrite: %v", enriched)
	}
	if stats["avg"] != 5.0 || stats["count"] != 2.0 {
		t.Fatalf("aggregate: %v", stats)
	}
	sink.waitLines(t, "connected bin-sub", "connected bin-pub", "published bin-pub bin/s/data")
	_, body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	for _, want := range []string{
		`mcutie_hook_calls_total{hook="httpauth",event="connect"} 3`,
		`mcutie_httpauth_connect_checks_total{hook="httpauth",result="deny"} 1`,
		`mcutie_aggregate_results_total{hook="aggregate",output="binstats/data",result="published"} 1`,
		`mcutie_webhook_events_total{hook="webhook",result="queued"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// A wrong file: exit code 2, and the line named.
	for _, tc := range []struct{ file, want string }{
		{"plugins:\n  - type: webhook\n    url: http://h\n    batch_size: many\n", "line 4: webhook: cannot unmarshal"},
		{"plugins:\n  - type: webhook\n    url: http://h\n    evnets: [connected]\n", `line 4: webhook: unknown key "evnets"`},
		{"plugins:\n  - type: aggregate\n    rules:\n      - filter: a/#\n        output: a/avg\n        count: 2\n", "line 5: aggregate: rules[0].output"},
		{"plugins:\n  - type: httpauth\n    url: ftp://h\n", "line 3: httpauth: url"},
		{"plugins:\n  - type: mqtt-bridge\n", `line 2: plugin type "mqtt-bridge"`},
	} {
		writeFile(tc.file)
		out, err := exec.Command(durBinary(t), "--store", "memory", "--metrics-listen", "", "--plugins", file).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%q: exit %v, output %q; want exit 2 and %q", tc.file, err, out, tc.want)
		}
	}
}
