package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mcutie/mcutie/admin"
	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// The management API (package admin) against a real broker and reactor,
// with paho clients on real sockets and HTTP requests over loopback.

const adminTestToken = "s3cret-token"

// adminAPI is a broker with the management API served on a loopback HTTP
// listener.
type adminAPI struct {
	*testBroker
	url   string
	token string
}

func startAdmin(t *testing.T, opts broker.Options) *adminAPI {
	t.Helper()
	opts.KeepIdentity = true
	tb := start(t, opts)
	api := admin.New(admin.Options{Broker: tb.B, Token: adminTestToken, Version: "test"})
	hs := httptest.NewServer(api.Handler())
	t.Cleanup(hs.Close)
	return &adminAPI{testBroker: tb, url: hs.URL, token: adminTestToken}
}

// do sends one request and decodes the JSON answer into out (when not
// nil); it returns the status. Every answer must be JSON.
func (a *adminAPI) do(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		default:
			j, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			rd = bytes.NewReader(j)
		}
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q, want application/json (body %s)", method, path, ct, raw)
	}
	if resp.StatusCode >= 400 {
		var e struct{ Error string }
		if err := json.Unmarshal(raw, &e); err != nil || e.Error == "" {
			t.Fatalf("%s %s: %d with body %s: want {\"error\": ...}", method, path, resp.StatusCode, raw)
		}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

type adminClient struct {
	ClientID          string     `json:"client_id"`
	Connected         bool       `json:"connected"`
	Protocol          string     `json:"protocol"`
	Address           string     `json:"address"`
	Username          string     `json:"username"`
	KeepAlive         int        `json:"keep_alive"`
	SubscriptionCount int        `json:"subscription_count"`
	ConnectedAt       *time.Time `json:"connected_at"`
	DisconnectedAt    *time.Time `json:"disconnected_at"`
	Subscriptions     []struct {
		Filter string `json:"filter"`
		QoS    int    `json:"qos"`
		Shared bool   `json:"shared"`
	} `json:"subscriptions"`
}

type adminPage[T any] struct {
	Items []T    `json:"items"`
	Total int    `json:"total"`
	Next  string `json:"next"`
}

func TestAdminClientsListShowKick(t *testing.T) {
	a := startAdmin(t, broker.Options{})
	v5, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "dev-v5", KeepAlive: 30, CleanStart: true,
		UsernameFlag: true, Username: "alice"})
	v5.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "sensors/+/temp", QoS: 1}, {Topic: "$share/g/jobs", QoS: 0}}})
	v3, _ := v3Paho(t, a.Addr, "dev-v3", true, nil, nil)
	v3Sub(t, v3, "cmd/#", 0)

	var pg adminPage[adminClient]
	if code := a.do(t, "GET", "/api/v1/clients?match=dev-", nil, &pg); code != 200 {
		t.Fatalf("GET /clients: %d", code)
	}
	if pg.Total != 2 || len(pg.Items) != 2 || pg.Items[0].ClientID != "dev-v3" || pg.Items[1].ClientID != "dev-v5" {
		t.Fatalf("clients: %+v", pg)
	}
	if c := pg.Items[1]; !c.Connected || c.Protocol != "5.0" || c.Username != "alice" || c.KeepAlive != 30 ||
		c.SubscriptionCount != 2 || c.ConnectedAt == nil || c.DisconnectedAt != nil || !strings.HasPrefix(c.Address, "127.0.0.1:") {
		t.Fatalf("v5 client: %+v", c)
	}
	if c := pg.Items[0]; c.Protocol != "3.1.1" || c.SubscriptionCount != 1 {
		t.Fatalf("v3 client: %+v", c)
	}
	// Filter by user name, then by address.
	if a.do(t, "GET", "/api/v1/clients?match=alice", nil, &pg); pg.Total != 1 || pg.Items[0].ClientID != "dev-v5" {
		t.Fatalf("match by user name: %+v", pg)
	}
	if a.do(t, "GET", "/api/v1/clients?match="+url.QueryEscape(pg.Items[0].Address), nil, &pg); pg.Total != 1 {
		t.Fatalf("match by address: %+v", pg)
	}

	var c adminClient
	if code := a.do(t, "GET", "/api/v1/clients/dev-v5", nil, &c); code != 200 {
		t.Fatalf("GET /clients/dev-v5: %d", code)
	}
	if len(c.Subscriptions) != 2 || c.Subscriptions[0].Filter != "$share/g/jobs" || !c.Subscriptions[0].Shared ||
		c.Subscriptions[1].Filter != "sensors/+/temp" || c.Subscriptions[1].QoS != 1 {
		t.Fatalf("subscriptions: %+v", c.Subscriptions)
	}
	var subs adminPage[struct {
		ClientID string `json:"client_id"`
		Filter   string `json:"filter"`
	}]
	if a.do(t, "GET", "/api/v1/subscriptions?match=cmd", nil, &subs); subs.Total != 1 || subs.Items[0].ClientID != "dev-v3" {
		t.Fatalf("subscriptions?match=cmd: %+v", subs)
	}

	// Kick the v5 client: DISCONNECT 0x98 Administrative action (§3.14.2.1).
	if code := a.do(t, "DELETE", "/api/v1/clients/dev-v5", nil, nil); code != 200 {
		t.Fatalf("DELETE: %d", code)
	}
	if d := v5.serverDisconnect(t); d.ReasonCode != byte(codec.AdministrativeAction) {
		t.Fatalf("DISCONNECT reason 0x%02x, want 0x98", d.ReasonCode)
	}
	// Its session ended with the connection (clean start, no expiry).
	v5Wait(t, "session gone", func() bool {
		return a.do(t, "GET", "/api/v1/clients/dev-v5", nil, nil) == 404
	})
	if code := a.do(t, "DELETE", "/api/v1/clients/nobody", nil, nil); code != 404 {
		t.Fatalf("DELETE unknown: %d, want 404", code)
	}
}

func TestAdminDiscardPersistentSession(t *testing.T) {
	a := startAdmin(t, broker.Options{})
	c, _ := v3Paho(t, a.Addr, "keeper", false, nil, nil)
	v3Sub(t, c, "keep/#", 1)
	// Kicked without ?session: the session stays, offline.
	if code := a.do(t, "DELETE", "/api/v1/clients/keeper", nil, nil); code != 200 {
		t.Fatalf("DELETE: %d", code)
	}
	var got adminClient
	v5Wait(t, "offline", func() bool {
		a.do(t, "GET", "/api/v1/clients/keeper", nil, &got)
		return !got.Connected
	})
	if got.DisconnectedAt == nil || got.SubscriptionCount != 1 {
		t.Fatalf("offline session: %+v", got)
	}
	var pg adminPage[adminClient]
	if a.do(t, "GET", "/api/v1/clients?state=offline", nil, &pg); pg.Total != 1 || pg.Items[0].ClientID != "keeper" {
		t.Fatalf("state=offline: %+v", pg)
	}
	// ?session=true discards it: the client comes back to no session
	// (CONNACK Session Present 0, MQTT-3.2.2-3).
	if code := a.do(t, "DELETE", "/api/v1/clients/keeper?session=true", nil, nil); code != 200 {
		t.Fatalf("DELETE ?session=true: %d", code)
	}
	if code := a.do(t, "GET", "/api/v1/clients/keeper", nil, nil); code != 404 {
		t.Fatalf("discarded session still listed: %d", code)
	}
	if _, present := v3Paho(t, a.Addr, "keeper", false, nil, nil); present {
		t.Fatal("session present after it was discarded")
	}

	// A connected persistent session discarded at once.
	v5, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "keeper5", KeepAlive: 30, Properties: &paho.ConnectProperties{SessionExpiryInterval: v5U32(3600)}})
	v5.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "k5", QoS: 1}}})
	if code := a.do(t, "DELETE", "/api/v1/clients/keeper5?session=true", nil, nil); code != 200 {
		t.Fatalf("DELETE ?session=true: %d", code)
	}
	v5.serverDisconnect(t)
	v5Wait(t, "session discarded", func() bool { return a.do(t, "GET", "/api/v1/clients/keeper5", nil, nil) == 404 })
}

func TestAdminRetainedListGetDelete(t *testing.T) {
	a := startAdmin(t, broker.Options{})
	pub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "ret-pub", KeepAlive: 30, CleanStart: true})
	pub.publish(t, &paho.Publish{Topic: "home/kitchen/temp", QoS: 1, Retain: true, Payload: []byte("21.5"),
		Properties: &paho.PublishProperties{ContentType: "text/plain", User: paho.UserProperties{{Key: "unit", Value: "C"}}}})
	pub.publish(t, &paho.Publish{Topic: "home/hall/temp", QoS: 1, Retain: true, Payload: []byte{0xff, 0x00}})
	var pg adminPage[struct {
		Topic string `json:"topic"`
		Size  int    `json:"size"`
		QoS   int    `json:"qos"`
	}]
	if a.do(t, "GET", "/api/v1/retained?match=home/&limit=1", nil, &pg); pg.Total != 2 || len(pg.Items) != 1 || pg.Items[0].Topic != "home/hall/temp" || pg.Next == "" {
		t.Fatalf("page 1: %+v", pg)
	}
	if a.do(t, "GET", "/api/v1/retained?match=home/&limit=1&after="+pg.Next, nil, &pg); len(pg.Items) != 1 || pg.Items[0].Topic != "home/kitchen/temp" || pg.Items[0].Size != 4 || pg.Items[0].QoS != 1 || pg.Next != "" {
		t.Fatalf("page 2: %+v", pg)
	}
	var one struct {
		Payload         string `json:"payload"`
		PayloadEncoding string `json:"payload_encoding"`
		Properties      struct {
			ContentType    string                        `json:"content_type"`
			UserProperties []struct{ Key, Value string } `json:"user_properties"`
		} `json:"properties"`
	}
	if code := a.do(t, "GET", "/api/v1/retained/home/kitchen/temp", nil, &one); code != 200 || one.Payload != "21.5" || one.PayloadEncoding != "text" ||
		one.Properties.ContentType != "text/plain" || len(one.Properties.UserProperties) != 1 || one.Properties.UserProperties[0].Value != "C" {
		t.Fatalf("GET retained: %d %+v", code, one)
	}
	// Binary payload: base64; the topic with its slashes encoded.
	if a.do(t, "GET", "/api/v1/retained/"+url.PathEscape("home/hall/temp"), nil, &one); one.PayloadEncoding != "base64" || one.Payload != base64.StdEncoding.EncodeToString([]byte{0xff, 0}) {
		t.Fatalf("GET binary retained: %+v", one)
	}
	if code := a.do(t, "DELETE", "/api/v1/retained/home/kitchen/temp", nil, nil); code != 200 {
		t.Fatalf("DELETE: %d", code)
	}
	if code := a.do(t, "GET", "/api/v1/retained/home/kitchen/temp", nil, nil); code != 404 {
		t.Fatalf("GET after DELETE: %d", code)
	}
	if code := a.do(t, "DELETE", "/api/v1/retained/home/kitchen/temp", nil, nil); code != 404 {
		t.Fatalf("second DELETE: %d", code)
	}
	// A new subscriber gets the retained message left, not the deleted one.
	sub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "ret-sub", KeepAlive: 30, CleanStart: true})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "home/#", QoS: 1}}})
	if p := sub.recv(t); p.Topic != "home/hall/temp" {
		t.Fatalf("retained received: %q", p.Topic)
	}
	sub.quiet(t)
}

func TestAdminPublishReachesSubscriberWithProperties(t *testing.T) {
	a := startAdmin(t, broker.Options{})
	sub, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "api-sub", KeepAlive: 30, CleanStart: true})
	sub.subscribe(t, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "api/#", QoS: 1}}})
	v3sink := newV3Sink()
	v3, _ := v3Paho(t, a.Addr, "api-sub3", true, v3sink, nil)
	v3Sub(t, v3, "api/#", 1)
	body := map[string]any{
		"topic": "api/cmd", "payload": base64.StdEncoding.EncodeToString([]byte("\x00bin\xff")), "payload_encoding": "base64",
		"qos": 1, "retain": false,
		"properties": map[string]any{
			"content_type": "application/octet-stream", "response_topic": "api/reply",
			"correlation_data": base64.StdEncoding.EncodeToString([]byte("corr-1")),
			"user_properties":  []map[string]string{{"key": "k", "value": "v1"}, {"key": "k", "value": "v2"}},
			"message_expiry":   600,
		},
	}
	var res struct {
		PayloadBytes int `json:"payload_bytes"`
	}
	if code := a.do(t, "POST", "/api/v1/publish", body, &res); code != 200 || res.PayloadBytes != 5 {
		t.Fatalf("POST /publish: %d %+v", code, res)
	}
	p := sub.recv(t)
	if p.Topic != "api/cmd" || string(p.Payload) != "\x00bin\xff" || p.QoS != 1 {
		t.Fatalf("received %q %q qos %d", p.Topic, p.Payload, p.QoS)
	}
	pp := p.Properties
	if pp == nil || pp.ContentType != "application/octet-stream" || pp.ResponseTopic != "api/reply" || string(pp.CorrelationData) != "corr-1" ||
		len(pp.User) != 2 || pp.User[0].Value != "v1" || pp.User[1].Value != "v2" || pp.MessageExpiry == nil || *pp.MessageExpiry == 0 || *pp.MessageExpiry > 600 {
		t.Fatalf("properties: %+v", pp)
	}
	if got := v3sink.waitPayload(t, "\x00bin\xff"); got[len(got)-1].Topic != "api/cmd" {
		t.Fatalf("3.1.1 subscriber: %+v", got)
	}
	// Text payload, retained: a later subscriber gets it.
	if code := a.do(t, "POST", "/api/v1/publish", `{"topic":"api/state","payload":"on","retain":true}`, nil); code != 200 {
		t.Fatalf("POST text: %d", code)
	}
	if p := sub.recv(t); string(p.Payload) != "on" {
		t.Fatalf("text payload %q", p.Payload)
	}
	var one struct{ Payload string }
	if a.do(t, "GET", "/api/v1/retained/api/state", nil, &one); one.Payload != "on" {
		t.Fatalf("retained by publish: %+v", one)
	}
}

func TestAdminBansRefuseConnections(t *testing.T) {
	a := startAdmin(t, broker.Options{BanThreshold: 0}) // automatic bans off: only the API's
	victim, _ := v5Connect(t, a.Addr, &paho.Connect{ClientID: "troll", KeepAlive: 30, CleanStart: true})
	var added struct {
		Value        string `json:"value"`
		Admin        bool   `json:"admin"`
		Disconnected int    `json:"disconnected"`
	}
	if code := a.do(t, "POST", "/api/v1/bans", `{"kind":"client_id","value":"troll","duration":"10m"}`, &added); code != 201 || !added.Admin || added.Disconnected != 1 {
		t.Fatalf("POST /bans: %d %+v", code, added)
	}
	if d := victim.serverDisconnect(t); d.ReasonCode != byte(codec.Banned) {
		t.Fatalf("DISCONNECT 0x%02x, want 0x8A", d.ReasonCode)
	}
	// The banned id is refused at CONNECT (v5: CONNACK 0x8A), whatever
	// its credentials; another id is let in.
	if _, ack, err := v5TryConnect(t, a.Addr, &paho.Connect{ClientID: "troll", KeepAlive: 30, CleanStart: true}); err == nil || ack == nil || ack.ReasonCode != byte(codec.Banned) {
		t.Fatalf("banned id: err %v ack %+v, want CONNACK 0x8A", err, ack)
	}
	v5Connect(t, a.Addr, &paho.Connect{ClientID: "friend", KeepAlive: 30, CleanStart: true})
	var bans adminPage[struct {
		Kind  string `json:"kind"`
		Value string `json:"value"`
	}]
	if a.do(t, "GET", "/api/v1/bans", nil, &bans); bans.Total != 1 || bans.Items[0].Value != "troll" {
		t.Fatalf("GET /bans: %+v", bans)
	}
	if code := a.do(t, "DELETE", "/api/v1/bans?kind=client_id&value=troll", nil, nil); code != 200 {
		t.Fatalf("DELETE /bans: %d", code)
	}
	v5Connect(t, a.Addr, &paho.Connect{ClientID: "troll", KeepAlive: 30, CleanStart: true})
	if code := a.do(t, "DELETE", "/api/v1/bans?kind=client_id&value=troll", nil, nil); code != 404 {
		t.Fatalf("second DELETE /bans: %d", code)
	}

	// An address ban: the loopback address itself. Connections from it
	// are closed at accept, before any CONNACK.
	if code := a.do(t, "POST", "/api/v1/bans", `{"kind":"address","value":"127.0.0.1","duration":"1m","disconnect":false}`, nil); code != 201 {
		t.Fatalf("POST address ban: %d", code)
	}
	if _, _, err := v5TryConnect(t, a.Addr, &paho.Connect{ClientID: "any", KeepAlive: 30, CleanStart: true}); err == nil {
		t.Fatal("connected from a banned address")
	}
	if code := a.do(t, "DELETE", "/api/v1/bans?kind=address&value=127.0.0.1", nil, nil); code != 200 {
		t.Fatalf("DELETE address ban: %d", code)
	}
	v5Connect(t, a.Addr, &paho.Connect{ClientID: "any", KeepAlive: 30, CleanStart: true})
}

func TestAdminTokenRequired(t *testing.T) {
	a := startAdmin(t, broker.Options{})
	for _, tok := range []string{"", "wrong", adminTestToken + "x"} {
		a.token = tok
		if code := a.do(t, "GET", "/api/v1/stats", nil, nil); code != 401 {
			t.Fatalf("token %q: %d, want 401", tok, code)
		}
	}
	a.token = adminTestToken
	var st struct {
		NodeID    string `json:"node_id"`
		Connected int    `json:"connected"`
	}
	v5Connect(t, a.Addr, &paho.Connect{ClientID: "counted", KeepAlive: 30, CleanStart: true})
	if code := a.do(t, "GET", "/api/v1/stats", nil, &st); code != 200 || st.NodeID != a.B.ID() || st.Connected != 1 {
		t.Fatalf("stats: %d %+v", code, st)
	}
	// No token on a listener other hosts can reach: refused.
	for _, addr := range []string{"0.0.0.0:9100", ":9100", "192.0.2.1:80", "[::]:1"} {
		if err := admin.CheckExposure(addr, ""); err == nil {
			t.Fatalf("%s without a token accepted", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:9100", "[::1]:9100", "localhost:9100"} {
		if err := admin.CheckExposure(addr, ""); err != nil {
			t.Fatalf("%s (loopback) without a token refused: %v", addr, err)
		}
	}
}

func TestAdminBadInput(t *testing.T) {
	a := startAdmin(t, broker.Options{})
	f := func(method, path string, body any, want int) {
		t.Helper()
		if code := a.do(t, method, path, body, nil); code != want {
			t.Fatalf("%s %s %v: %d, want %d", method, path, body, code, want)
		}
	}
	f("GET", "/api/v1/clients?limit=0", nil, 400)
	f("GET", "/api/v1/clients?limit=100000", nil, 400)
	f("GET", "/api/v1/clients?page=-1", nil, 400)
	f("GET", "/api/v1/clients?page=abc", nil, 400)
	f("GET", "/api/v1/clients?page=1000&limit=500", nil, 400) // beyond the window: use after
	f("GET", "/api/v1/clients?after=!!!", nil, 400)
	f("GET", "/api/v1/clients?state=sleeping", nil, 400)
	f("DELETE", "/api/v1/clients/x?session=maybe", nil, 400)
	f("POST", "/api/v1/publish", "not json", 400)
	f("POST", "/api/v1/publish", `{"topic":"a/+"}`, 400)
	f("POST", "/api/v1/publish", `{"topic":""}`, 400)
	f("POST", "/api/v1/publish", `{"topic":"a","qos":3}`, 400)
	f("POST", "/api/v1/publish", `{"topic":"a","payload":"!!","payload_encoding":"base64"}`, 400)
	f("POST", "/api/v1/publish", `{"topic":"a","payload_encoding":"hex"}`, 400)
	f("POST", "/api/v1/publish", `{"topic":"a","colour":"red"}`, 400)
	f("POST", "/api/v1/publish", `{"topic":"a"} {"topic":"b"}`, 400)
	f("POST", "/api/v1/publish", `{"topic":"a","properties":{"payload_format":1},"payload":"\u00ff","payload_encoding":"text"}`, 200)
	f("POST", "/api/v1/publish", `{"topic":"a","properties":{"payload_format":2}}`, 400)
	f("POST", "/api/v1/publish", `{"topic":"a","properties":{"response_topic":"r/#"}}`, 400)
	f("POST", "/api/v1/publish", `{"topic":"a","properties":{"correlation_data":"*"}}`, 400)
	f("POST", "/api/v1/publish", `{"topic":"a","qos":"1"}`, 400)
	f("POST", "/api/v1/publish", `[]`, 400)
	f("POST", "/api/v1/publish", strings.Repeat("x", admin.DefaultMaxBodyBytes+1), 400)
	f("POST", "/api/v1/bans", `{"kind":"ip","value":"1.2.3.4","duration":"1m"}`, 400)
	f("POST", "/api/v1/bans", `{"kind":"address","value":"1.2.3.4/24","duration":"1m"}`, 400)
	f("POST", "/api/v1/bans", `{"kind":"address","value":"1.2.3.4","duration":"forever"}`, 400)
	f("POST", "/api/v1/bans", `{"kind":"address","value":"1.2.3.4","duration":"10ms"}`, 400)
	f("POST", "/api/v1/bans", `{"kind":"client_id","value":"","duration":"1m"}`, 400)
	f("DELETE", "/api/v1/bans", nil, 400)
	f("DELETE", "/api/v1/retained/a/%2B", nil, 400)
	f("GET", "/api/v1/retained/x?payload_encoding=hex", nil, 400)
	f("GET", "/api/v1/nothing", nil, 404)
	f("GET", "/api/v1/", nil, 404)
	f("PUT", "/api/v1/clients", nil, 405)
	f("POST", "/api/v1/stats", nil, 405)
}

// TestAdminPagingAcrossLoops: pages merged from four loops, by page number
// and by cursor, list every session and subscription once, in order.
func TestAdminPagingAcrossLoops(t *testing.T) {
	a := startAdmin(t, broker.Options{Loops: 4})
	want := map[string]bool{}
	for i := 0; i < 120; i++ {
		id := fmt.Sprintf("pg-%03d", (i*37)%120) // connected out of order
		r, _ := v3Raw(t, a.Addr, codec.V311, id, i%3 != 0, nil)
		if codes := r.v3Subscribe(1, "p/"+id+"/a", 0, "p/"+id+"/b", 1); len(codes) != 2 {
			t.Fatalf("SUBACK %v", codes)
		}
		if i%3 == 0 {
			r.c.Close() // a persistent session, now offline
		}
		want[id] = true
	}
	v5Wait(t, "offline sessions", func() bool {
		var pg adminPage[adminClient]
		a.do(t, "GET", "/api/v1/clients?state=offline&match=pg-", nil, &pg)
		return pg.Total == 40
	})
	collect := func(cursor bool, next func(pg int, after string) string) []string {
		var ids []string
		after := ""
		for p := 1; p < 100; p++ {
			var pg adminPage[adminClient]
			if code := a.do(t, "GET", next(p, after), nil, &pg); code != 200 {
				t.Fatalf("page %d: %d", p, code)
			}
			// Total counts the matches after the cursor (all of them by page).
			if cursor && pg.Total != 120-len(ids) || !cursor && pg.Total != 120 {
				t.Fatalf("page %d: total %d with %d read", p, pg.Total, len(ids))
			}
			for _, c := range pg.Items {
				ids = append(ids, c.ClientID)
			}
			if pg.Next == "" {
				break
			}
			after = pg.Next
		}
		return ids
	}
	byCursor := collect(true, func(_ int, after string) string { return "/api/v1/clients?match=pg-&limit=7&after=" + after })
	byPage := collect(false, func(p int, _ string) string { return fmt.Sprintf("/api/v1/clients?match=pg-&limit=7&page=%d", p) })
	for _, ids := range [][]string{byCursor, byPage} {
		if len(ids) != 120 {
			t.Fatalf("%d ids listed, want 120", len(ids))
		}
		for i, id := range ids {
			if !want[id] || i > 0 && ids[i-1] >= id {
				t.Fatalf("ids out of order or unknown at %d: %v", i, ids)
			}
		}
	}
	// Subscriptions: two per session, by client id then filter.
	var subs []string
	after := ""
	for {
		var pg adminPage[struct {
			ClientID string `json:"client_id"`
			Filter   string `json:"filter"`
		}]
		a.do(t, "GET", "/api/v1/subscriptions?match=p/pg-&limit=11&after="+after, nil, &pg)
		for _, s := range pg.Items {
			subs = append(subs, s.ClientID+" "+s.Filter)
		}
		if pg.Next == "" {
			break
		}
		after = pg.Next
	}
	if len(subs) != 240 || !sort.StringsAreSorted(subs) {
		t.Fatalf("%d subscriptions listed (want 240), sorted %v", len(subs), sort.StringsAreSorted(subs))
	}
}
