package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"gopkg.in/yaml.v3"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/reactor"
	"github.com/mcutie/mcutie/store"
)

// The OpenAPI document against the real handlers, over a real broker and
// reactor: every documented path, method and status is answered with a
// body that matches its documented schema (required fields present, types
// and enums right, no undocumented field), every route the API registers
// is documented and every documented one registered, and nothing else
// under /api/v1 answers but a JSON 404 (or 405 for a known path).

type spec struct {
	Paths      map[string]map[string]any `yaml:"paths"`
	Components map[string]map[string]any `yaml:"components"`
}

func loadSpec(t *testing.T) *spec {
	t.Helper()
	var s spec
	if err := yaml.Unmarshal(OpenAPI, &s); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return &s
}

// resolve follows a $ref.
func (s *spec) resolve(v any) map[string]any {
	m, _ := v.(map[string]any)
	for {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
		m, _ = s.Components[parts[0]][parts[1]].(map[string]any)
		if m == nil {
			panic("openapi.yaml: dangling $ref " + ref)
		}
	}
}

// operations are the documented (method, path) pairs with their statuses.
func (s *spec) operations() map[string][]string {
	ops := map[string][]string{}
	for path, item := range s.Paths {
		for method, op := range item {
			if method == "parameters" {
				continue
			}
			var codes []string
			for code := range op.(map[string]any)["responses"].(map[string]any) {
				codes = append(codes, code)
			}
			sort.Strings(codes)
			ops[strings.ToUpper(method)+" "+path] = codes
		}
	}
	return ops
}

// responseSchema is the JSON schema of op's response code ("" if none).
func (s *spec) responseSchema(op, code string) (map[string]any, string) {
	method, path, _ := strings.Cut(op, " ")
	o := s.Paths[path][strings.ToLower(method)].(map[string]any)
	r := s.resolve(o["responses"].(map[string]any)[code])
	if r == nil {
		return nil, ""
	}
	for ct, c := range r["content"].(map[string]any) {
		return s.resolve(c.(map[string]any)["schema"]), ct
	}
	return nil, ""
}

// check validates v (decoded with UseNumber) against schema.
func (s *spec) check(schema map[string]any, v any, at string) error {
	schema = s.resolve(schema)
	if v == nil {
		if schema["nullable"] == true {
			return nil
		}
		return fmt.Errorf("%s: null, not nullable", at)
	}
	if enum, ok := schema["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			if fmt.Sprint(e) == fmt.Sprint(v) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%s: %v not in %v", at, v, enum)
		}
	}
	switch schema["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T, want object", at, v)
		}
		props, _ := schema["properties"].(map[string]any)
		for _, r := range asList(schema["required"]) {
			if _, ok := m[r]; !ok {
				return fmt.Errorf("%s: required field %q missing", at, r)
			}
		}
		for k, fv := range m {
			ps, ok := props[k]
			if !ok {
				ap, isSchema := schema["additionalProperties"].(map[string]any)
				if !isSchema {
					return fmt.Errorf("%s: undocumented field %q", at, k)
				}
				ps = ap
			}
			if err := s.check(ps.(map[string]any), fv, at+"."+k); err != nil {
				return err
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %T, want array", at, v)
		}
		for i, e := range a {
			if err := s.check(schema["items"].(map[string]any), e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: %T, want string", at, v)
		}
		if schema["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				return fmt.Errorf("%s: %q is not a date-time", at, str)
			}
		}
	case "integer":
		n, ok := v.(json.Number)
		if _, err := n.Int64(); !ok || err != nil {
			if _, uerr := fmt.Sscanf(string(n), "%d", new(uint64)); !ok || uerr != nil || strings.ContainsAny(string(n), ".eE") {
				return fmt.Errorf("%s: %v, want integer", at, v)
			}
		}
	case "number":
		if _, ok := v.(json.Number); !ok {
			return fmt.Errorf("%s: %T, want number", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %T, want boolean", at, v)
		}
	default:
		return fmt.Errorf("%s: schema without a type the checker knows: %v", at, schema)
	}
	return nil
}

func asList(v any) []string {
	var out []string
	l, _ := v.([]any) // absent: none
	for _, x := range l {
		out = append(out, x.(string))
	}
	return out
}

// TestSchemaChecker: the checker itself refuses what it must.
func TestSchemaChecker(t *testing.T) {
	s := loadSpec(t)
	ban := s.resolve(map[string]any{"$ref": "#/components/schemas/BanRemoved"})
	f := func(body string, ok bool) {
		t.Helper()
		dec := json.NewDecoder(strings.NewReader(body))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		if err := s.check(ban, v, "body"); (err == nil) != ok {
			t.Fatalf("%s: err %v, want ok %v", body, err, ok)
		}
	}
	f(`{"kind":"address","value":"1.2.3.4","removed":true}`, true)
	f(`{"kind":"address","value":"1.2.3.4"}`, false)                          // required missing
	f(`{"kind":"address","value":"1.2.3.4","removed":"yes"}`, false)          // wrong type
	f(`{"kind":"address","value":"1.2.3.4","removed":true,"extra":1}`, false) // undocumented field
	f(`[]`, false)
	page := s.resolve(map[string]any{"$ref": "#/components/schemas/ClientPage"})
	dec := json.NewDecoder(strings.NewReader(`{"items":[{"client_id":"a"}],"total":1,"page":1,"limit":1,"next":""}`))
	dec.UseNumber()
	var v any
	_ = dec.Decode(&v)
	if err := s.check(page, v, "body"); err == nil {
		t.Fatal("an item without its required fields passed")
	}
}

// conformanceBroker starts a broker and reactor on loopback port 0 with a
// client that has a session and subscriptions, a retained message, and
// small bounds that let the 409s happen.
func conformanceBroker(t *testing.T) (*broker.Broker, string) {
	t.Helper()
	b := broker.New(broker.Options{Loops: 2, Store: store.NewMemory(), KeepIdentity: true, DelayedPublish: true,
		MaxRetainedMessages: 2, BanMaxTracked: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := reactor.New(b, reactor.Options{Listen: []string{"tcp://127.0.0.1:0"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	addr := srv.Addrs()[0].String()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: nc})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "conf-1", KeepAlive: 30, UsernameFlag: true, Username: "u",
		Properties: &paho.ConnectProperties{SessionExpiryInterval: new(uint32(600))}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "conf/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "conf/ret", QoS: 1, Retain: true, Payload: []byte("r"),
		Properties: &paho.PublishProperties{MessageExpiry: new(uint32(3600)), CorrelationData: []byte{1}}}); err != nil {
		t.Fatal(err)
	}
	// A delayed message that waits an hour, for /api/v1/delayed.
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "$delayed/3600/conf/later", QoS: 1, Payload: []byte("d")}); err != nil {
		t.Fatal(err)
	}
	return b, addr
}

type scenario struct {
	op, url, body string
	code          int
	token         string // "" uses the API's
	api           *httptest.Server
}

func TestOpenAPIMatchesHandlers(t *testing.T) {
	s := loadSpec(t)
	b, _ := conformanceBroker(t)
	const token = "t0ken"
	api := New(Options{Broker: b, Token: token, Version: "test",
		Listeners: func() []Listener {
			return []Listener{{Kind: "tcp", Address: "127.0.0.1:1883", URL: "tcp://127.0.0.1:1883"}}
		},
		Config: func() []Setting {
			return []Setting{{Name: "admin-token", Value: "********", Secret: true, Changed: true}}
		}})
	hs := httptest.NewServer(api.Handler())
	defer hs.Close()
	// A broker whose loops are not bound (never started): 503s.
	idle := New(Options{Broker: broker.New(broker.Options{Loops: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}),
		QueryTimeout: 200 * time.Millisecond})
	his := httptest.NewServer(idle.Handler())
	defer his.Close()

	// Every documented route registered, every registered one documented.
	routes := map[string]bool{}
	for _, r := range api.routes {
		routes[r.method+" "+strings.ReplaceAll(r.pattern, "{topic...}", "{topic}")] = true
	}
	ops := s.operations()
	for op := range ops {
		if !routes[op] {
			t.Errorf("documented but not served: %s", op)
		}
	}
	for r := range routes {
		if _, ok := ops[r]; !ok {
			t.Errorf("served but not documented: %s", r)
		}
	}

	ds := b.DelayedMessages()
	if len(ds) != 1 || ds[0].Topic != "conf/later" {
		t.Fatalf("delayed messages %+v, want the one conformanceBroker published", ds)
	}
	delayedID := strconv.FormatUint(ds[0].ID, 10)

	sc := []scenario{
		{op: "GET /api/v1/stats", url: "/api/v1/stats", code: 200},
		{op: "GET /api/v1/clients", url: "/api/v1/clients?limit=10&match=conf", code: 200},
		{op: "GET /api/v1/clients", url: "/api/v1/clients?limit=0", code: 400},
		{op: "GET /api/v1/clients", url: "/api/v1/clients", code: 503, api: his},
		{op: "GET /api/v1/clients/{id}", url: "/api/v1/clients/conf-1", code: 200},
		{op: "GET /api/v1/clients/{id}", url: "/api/v1/clients/nobody", code: 404},
		{op: "GET /api/v1/clients/{id}", url: "/api/v1/clients/x", code: 503, api: his},
		{op: "DELETE /api/v1/clients/{id}", url: "/api/v1/clients/conf-1?session=maybe", code: 400},
		{op: "DELETE /api/v1/clients/{id}", url: "/api/v1/clients/nobody", code: 404},
		{op: "DELETE /api/v1/clients/{id}", url: "/api/v1/clients/x", code: 503, api: his},
		{op: "GET /api/v1/subscriptions", url: "/api/v1/subscriptions", code: 200},
		{op: "GET /api/v1/subscriptions", url: "/api/v1/subscriptions?page=0", code: 400},
		{op: "GET /api/v1/subscriptions", url: "/api/v1/subscriptions", code: 503, api: his},
		{op: "GET /api/v1/retained", url: "/api/v1/retained?match=conf", code: 200},
		{op: "GET /api/v1/retained", url: "/api/v1/retained?limit=x", code: 400},
		{op: "GET /api/v1/retained/{topic}", url: "/api/v1/retained/conf/ret", code: 200},
		{op: "GET /api/v1/retained/{topic}", url: "/api/v1/retained/conf/ret?payload_encoding=hex", code: 400},
		{op: "GET /api/v1/retained/{topic}", url: "/api/v1/retained/conf/none", code: 404},
		{op: "POST /api/v1/publish", url: "/api/v1/publish", body: `{"topic":"conf/a","payload":"x","qos":1,"properties":{"content_type":"t","user_properties":[{"key":"k","value":"v"}]}}`, code: 200},
		{op: "POST /api/v1/publish", url: "/api/v1/publish", body: `{"topic":"conf/#"}`, code: 400},
		{op: "POST /api/v1/publish", url: "/api/v1/publish", body: `{"topic":"conf/r2","payload":"x","retain":true}`, code: 200},
		{op: "POST /api/v1/publish", url: "/api/v1/publish", body: `{"topic":"conf/r3","payload":"x","retain":true}`, code: 409}, // --max-retained-messages 2
		{op: "POST /api/v1/publish", url: "/api/v1/publish", body: `{"topic":"a","payload":"x","qos":1}`, code: 503, api: his},
		{op: "DELETE /api/v1/retained/{topic}", url: "/api/v1/retained/conf/r2", code: 200},
		{op: "DELETE /api/v1/retained/{topic}", url: "/api/v1/retained/conf/%2B", code: 400},
		{op: "DELETE /api/v1/retained/{topic}", url: "/api/v1/retained/conf/r2", code: 404},
		{op: "DELETE /api/v1/retained/{topic}", url: "/api/v1/retained/a", code: 503, api: his},
		{op: "DELETE /api/v1/clients/{id}", url: "/api/v1/clients/conf-1?session=true", code: 200},
		{op: "POST /api/v1/bans", url: "/api/v1/bans", body: `{"kind":"client_id","value":"b1","duration":"1m"}`, code: 201},
		{op: "POST /api/v1/bans", url: "/api/v1/bans", body: `{"kind":"address","value":"192.0.2.1","duration":"1h","disconnect":false}`, code: 201},
		{op: "POST /api/v1/bans", url: "/api/v1/bans", body: `{"kind":"client_id","value":"b2","duration":"1m"}`, code: 201},
		{op: "POST /api/v1/bans", url: "/api/v1/bans", body: `{"kind":"client_id","value":"b3","duration":"1m"}`, code: 409}, // --ban-max-tracked 2
		{op: "POST /api/v1/bans", url: "/api/v1/bans", body: `{"kind":"client_id","value":"b3"}`, code: 400},
		{op: "GET /api/v1/bans", url: "/api/v1/bans", code: 200},
		{op: "GET /api/v1/bans", url: "/api/v1/bans?limit=-1", code: 400},
		{op: "DELETE /api/v1/bans", url: "/api/v1/bans?kind=client_id&value=b1", code: 200},
		{op: "DELETE /api/v1/bans", url: "/api/v1/bans?kind=client_id&value=b1", code: 404},
		{op: "DELETE /api/v1/bans", url: "/api/v1/bans?kind=host&value=b1", code: 400},
		{op: "GET /api/v1/delayed", url: "/api/v1/delayed?match=later", code: 200},
		{op: "GET /api/v1/delayed", url: "/api/v1/delayed?limit=x", code: 400},
		{op: "DELETE /api/v1/delayed/{id}", url: "/api/v1/delayed/" + delayedID, code: 200},
		{op: "DELETE /api/v1/delayed/{id}", url: "/api/v1/delayed/" + delayedID, code: 404},
		{op: "DELETE /api/v1/delayed/{id}", url: "/api/v1/delayed/abc", code: 400},
		{op: "GET /api/v1/listeners", url: "/api/v1/listeners", code: 200},
		{op: "GET /api/v1/config", url: "/api/v1/config", code: 200},
		{op: "GET /api/v1/openapi.yaml", url: "/api/v1/openapi.yaml", code: 200},
	}
	// 401 for every operation without the token.
	for op := range ops {
		method, path, _ := strings.Cut(op, " ")
		url := strings.NewReplacer("{id}", "conf-1", "{topic}", "conf/ret").Replace(path)
		sc = append(sc, scenario{op: method + " " + path, url: url, code: 401, token: "-"})
	}
	covered := map[string]bool{}
	for _, c := range sc {
		method, _, _ := strings.Cut(c.op, " ")
		srv := hs
		if c.api != nil {
			srv = c.api
		}
		tok := token
		if c.token == "-" {
			tok = ""
		}
		code, ct, raw := send(t, srv.URL, method, c.url, c.body, tok)
		if code != c.code {
			t.Errorf("%s %s: %d, want %d: %s", method, c.url, code, c.code, raw)
			continue
		}
		schema, wantCT := s.responseSchema(c.op, fmt.Sprint(code))
		if schema == nil {
			t.Errorf("%s answered %d, which openapi.yaml does not document", c.op, code)
			continue
		}
		covered[c.op+" "+fmt.Sprint(code)] = true
		if ct != wantCT {
			t.Errorf("%s %s: Content-Type %q, want %q", method, c.url, ct, wantCT)
			continue
		}
		if wantCT != "application/json" {
			if !bytes.Equal(raw, OpenAPI) {
				t.Errorf("%s: not the document", c.url)
			}
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Errorf("%s %s: not JSON: %v: %s", method, c.url, err, raw)
			continue
		}
		if err := s.check(schema, v, "body"); err != nil {
			t.Errorf("%s %s (%d): %v\n%s", method, c.url, code, err, raw)
		}
	}
	for op, codes := range ops {
		for _, code := range codes {
			if !covered[op+" "+code] {
				t.Errorf("%s %s is documented but no scenario produced it", op, code)
			}
		}
	}

	// Nothing undocumented: unknown paths are JSON 404s, known paths with
	// another method JSON 405s that name the methods.
	for _, u := range []string{"/api/v1/", "/api/v1/nothing", "/api/v1/clients/a/b", "/api/v1/statistics", "/api/v1/stats/x", "/api/v2/stats"} {
		code, ct, raw := send(t, hs.URL, "GET", u, "", token)
		if u == "/api/v2/stats" { // outside the API's prefix: the mux's own 404
			if code != 404 {
				t.Errorf("%s: %d", u, code)
			}
			continue
		}
		if code != 404 || ct != "application/json" || !bytes.Contains(raw, []byte(`"error"`)) {
			t.Errorf("GET %s: %d %s %s, want a JSON 404", u, code, ct, raw)
		}
	}
	for path, item := range s.Paths {
		url := strings.NewReplacer("{id}", "conf-1", "{topic}", "conf/ret").Replace(path)
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			if _, ok := item[strings.ToLower(m)]; ok {
				continue
			}
			code, ct, raw := send(t, hs.URL, m, url, "", token)
			if code != 405 || ct != "application/json" || !bytes.Contains(raw, []byte(`"error"`)) {
				t.Errorf("%s %s: %d %s %s, want a JSON 405", m, url, code, ct, raw)
			}
		}
	}
}

func send(t *testing.T, base, method, url, body, token string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), raw
}
