package rewrite

import (
	"strings"
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

// Topic rules: the first rule whose filter matches decides; its regular
// expression's groups and %c / %u fill the destination; no match of the
// expression leaves the topic; shared subscriptions keep their prefix.
func TestTopicRules(t *testing.T) {
	p, err := New(Config{Topics: []TopicRule{
		{Action: "publish", Filter: "x/#", Regex: `^x/y/(.+)$`, Dest: "z/y/$1"},
		{Action: "subscribe", Filter: "y/+/z/#", Regex: `^y/(.+)/z/(.+)$`, Dest: "y/z/$2"},
		{Filter: "x/#", Regex: `^x/(.+)$`, Dest: "never/$1"}, // shadowed by rule 0 for publish
		{Filter: "dev/#", Regex: `^dev/(.+)$`, Dest: "tenants/%u/%c/$1"},
		{Action: "subscribe", Filter: "all/#", Regex: `^all/(.*)$`, Dest: "+/${1}"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if want := hooks.EventsOf(hooks.PublishTopic, hooks.Subscribe); p.Provides() != want {
		t.Fatalf("provides %v, want %v", p.Provides(), want)
	}
	alice := &hooks.Client{ID: "c1", Username: "alice", HasUsername: true}
	anon := &hooks.Client{ID: "c2"}
	pub := func(c *hooks.Client, in, want string) {
		t.Helper()
		got := p.OnPublishTopic(c, []byte(in))
		if want == "" && got != nil || want != "" && string(got) != want {
			t.Fatalf("publish %q: got %q, want %q", in, got, want)
		}
	}
	sub := func(in, want string) {
		t.Helper()
		s := &hooks.Subscription{Filter: []byte(in), QoS: 1}
		if err := p.OnSubscribe(alice, s); err != nil || string(s.Filter) != want {
			t.Fatalf("subscribe %q: got %q (%v), want %q", in, s.Filter, err, want)
		}
	}
	pub(alice, "x/y/1/2", "z/y/1/2")
	pub(alice, "x/q", "")     // rule 0 matches the filter, not the expression: left, rule 2 not tried
	pub(alice, "y/a/z/b", "") // a subscribe rule
	pub(alice, "dev/t1", "tenants/alice/c1/t1")
	pub(anon, "dev/t1", "")                                                       // no user name for %u: left
	pub(&hooks.Client{ID: "a/b", Username: "u", HasUsername: true}, "dev/t1", "") // %c would add a level
	sub("y/a/z/b/c", "y/z/b/c")
	sub("$share/g/y/a/z/b", "$share/g/y/z/b")
	sub("x/y/1", "never/y/1") // rule 0 is publish only: rule 2 decides for a SUBSCRIBE
	sub("all/things", "+/things")
	sub("other", "other")

	// Bad rules are refused with the field that is wrong.
	bad := func(r TopicRule, field string) {
		t.Helper()
		_, err := New(Config{Topics: []TopicRule{{Filter: "a", Regex: "a", Dest: "b"}, r}})
		if err == nil || !strings.Contains(err.Error(), "topics[1]."+field) {
			t.Fatalf("%+v: %v, want an error on topics[1].%s", r, err, field)
		}
	}
	bad(TopicRule{Action: "both", Filter: "a", Regex: "a", Dest: "b"}, "action")
	bad(TopicRule{Filter: "a/#/b", Regex: "a", Dest: "b"}, "filter")
	bad(TopicRule{Filter: "a", Regex: "(", Dest: "b"}, "re")
	bad(TopicRule{Filter: "a", Regex: "a", Dest: ""}, "dest")
	bad(TopicRule{Filter: "a", Regex: "a", Dest: "b/%x"}, "dest")
	bad(TopicRule{Action: "publish", Filter: "a", Regex: "a", Dest: "b/+"}, "dest")
}
