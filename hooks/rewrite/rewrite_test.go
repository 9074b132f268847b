package rewrite

import (
	"testing"
	"time"

	"github.com/mcutie/mcutie/hooks"
)

var at = time.Date(2026, 1, 2, 15, 4, 5, 123000000, time.UTC)

func TestEnrich(t *testing.T) {
	p, err := New(Config{Filters: []string{"#"}})
	if err != nil {
		t.Fatal(err)
	}
	f := func(in, want string) {
		t.Helper()
		if got := string(p.Enrich([]byte(in), "s-7", at)); got != want {
			t.Fatalf("Enrich(%q) = %s; want %s", in, got, want)
		}
	}
	f(`{"temp":21.5}`, `{"clientid":"s-7","temp":21.5,"ts":"2026-01-02T15:04:05.123Z"}`)
	f(` {"clientid":"spoofed","ts":1} `, `{"clientid":"s-7","ts":"2026-01-02T15:04:05.123Z"}`)
	f(`21.5`, `{"clientid":"s-7","payload":21.5,"ts":"2026-01-02T15:04:05.123Z"}`)
	f(`[1,2]`, `{"clientid":"s-7","payload":[1,2],"ts":"2026-01-02T15:04:05.123Z"}`)
	f(`hot "day"`, `{"clientid":"s-7","payload":"hot \"day\"","ts":"2026-01-02T15:04:05.123Z"}`)
	f(`{broken`, `{"clientid":"s-7","payload":"{broken","ts":"2026-01-02T15:04:05.123Z"}`)
	f(``, `{"clientid":"s-7","payload":"","ts":"2026-01-02T15:04:05.123Z"}`)
	f("\xff\x00", `{"clientid":"s-7","payload":"/wA=","payload_encoding":"base64","ts":"2026-01-02T15:04:05.123Z"}`)
	f(`null`, `{"clientid":"s-7","payload":null,"ts":"2026-01-02T15:04:05.123Z"}`)

	p2, _ := New(Config{Filters: []string{"#"}, ClientField: "from", TimeField: "at", WrapField: "v", TimeFormat: "unix_ms"})
	if got := string(p2.Enrich([]byte("x"), "c", at)); got != `{"at":1767366245123,"from":"c","v":"x"}` {
		t.Fatalf("got %s", got)
	}
}

// Only clients' messages on the filters are rewritten, as a copy.
func TestOnPublish(t *testing.T) {
	p, _ := New(Config{Filters: []string{"s/+/t"}, Now: func() time.Time { return at }})
	c := &hooks.Client{ID: "s-7"}
	in := &hooks.Message{Topic: []byte("s/1/t"), Payload: []byte(`{"v":1}`), QoS: 1, Origin: hooks.FromClient, Client: c}
	out, err := p.OnPublish(in)
	if err != nil || out == nil || string(out.Payload) != `{"clientid":"s-7","ts":"2026-01-02T15:04:05.123Z","v":1}` || out.QoS != 1 || string(out.Topic) != "s/1/t" {
		t.Fatalf("got %+v, %v", out, err)
	}
	if string(in.Payload) != `{"v":1}` {
		t.Fatal("the original was changed")
	}
	for _, m := range []*hooks.Message{
		{Topic: []byte("s/1/u"), Origin: hooks.FromClient, Client: c},
		{Topic: []byte("s/1/t"), Origin: hooks.FromServer},
	} {
		if out, err := p.OnPublish(m); out != nil || err != nil {
			t.Fatalf("%s: rewritten", m.Topic)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	f := func(cfg Config, path string) {
		t.Helper()
		_, err := New(cfg)
		fe, ok := err.(interface{ FieldPath() string })
		if !ok || fe.FieldPath() != path {
			t.Fatalf("New(%+v): %v; want an error on %s", cfg, err, path)
		}
	}
	f(Config{}, "filters")
	f(Config{Filters: []string{"a", "b+"}}, "filters[1]")
	f(Config{Filters: []string{"a"}, TimeFormat: "iso"}, "time_format")
}
