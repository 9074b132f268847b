package rewrite

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/mcutie/mcutie/codec"

	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/hooks/internal/conf"
)

// Config configures the plugin.
type Config struct {
	// Name labels the hook's metrics and logs (default "rewrite").
	Name string `yaml:"name"`
	// Filters select the messages whose payload is enriched.
	Filters []string `yaml:"filters"`
	// Topics are topic rewrite rules (topics.go), applied to PUBLISH
	// topics and SUBSCRIBE filters before the ACL check. Filters, Topics
	// or both must be given.
	Topics []TopicRule `yaml:"topics"`
	// ClientField and TimeField name the added fields (default
	// "clientid" and "ts"); WrapField the field holding a payload that
	// is not a JSON object (default "payload").
	ClientField string `yaml:"client_field"`
	TimeField   string `yaml:"time_field"`
	WrapField   string `yaml:"wrap_field"`
	// TimeFormat is "rfc3339" (default: RFC 3339 with nanoseconds, UTC)
	// or "unix_ms" (a number).
	TimeFormat string `yaml:"time_format"`

	// Now is the clock (default time.Now). Not from YAML.
	Now func() time.Time `yaml:"-"`
}

// Plugin is the rewrite hook. Create it with New.
type Plugin struct {
	cfg      Config
	provides hooks.Events
}

var (
	_ hooks.PublishHook      = (*Plugin)(nil)
	_ hooks.PublishTopicHook = (*Plugin)(nil)
	_ hooks.SubscribeHook    = (*Plugin)(nil)
)

// New checks cfg and returns the plugin.
func New(cfg Config) (*Plugin, error) {
	if cfg.Name == "" {
		cfg.Name = "rewrite"
	}
	if len(cfg.Filters) == 0 && len(cfg.Topics) == 0 {
		return nil, conf.Errorf("filters", "give at least one topic filter (payload enrichment) or topics: rules (topic rewrite)")
	}
	var provides hooks.Events
	if len(cfg.Filters) > 0 {
		provides |= hooks.EventsOf(hooks.Publish)
	}
	cfg.Topics = append([]TopicRule(nil), cfg.Topics...)
	for i := range cfg.Topics {
		r := &cfg.Topics[i]
		if err := r.compile(i); err != nil {
			return nil, err
		}
		if r.pub {
			provides |= hooks.EventsOf(hooks.PublishTopic)
		}
		if r.sub {
			provides |= hooks.EventsOf(hooks.Subscribe)
		}
	}
	for i, f := range cfg.Filters {
		if codec.ValidateTopicFilter([]byte(f)) != nil {
			return nil, conf.Errorf(fmt.Sprintf("filters[%d]", i), "%q is not a valid topic filter", f)
		}
	}
	if cfg.ClientField == "" {
		cfg.ClientField = "clientid"
	}
	if cfg.TimeField == "" {
		cfg.TimeField = "ts"
	}
	if cfg.WrapField == "" {
		cfg.WrapField = "payload"
	}
	switch cfg.TimeFormat {
	case "":
		cfg.TimeFormat = "rfc3339"
	case "rfc3339", "unix_ms":
	default:
		return nil, conf.Errorf("time_format", "%q: want rfc3339 or unix_ms", cfg.TimeFormat)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Plugin{cfg: cfg, provides: provides}, nil
}

// Name is Config.Name.
func (p *Plugin) Name() string { return p.cfg.Name }

// Provides is Publish (payload enrichment), PublishTopic and Subscribe
// (topic rules), as configured.
func (p *Plugin) Provides() hooks.Events { return p.provides }

// OnPublish returns the enriched copy of a client's message on one of the
// filters, and passes every other message. Safe for concurrent use.
func (p *Plugin) OnPublish(m *hooks.Message) (*hooks.Message, error) {
	if len(p.cfg.Filters) == 0 || m.Client == nil || (m.Origin != hooks.FromClient && m.Origin != hooks.FromWill) || !p.matches(m.Topic) {
		return nil, nil
	}
	out := *m
	out.Payload = p.Enrich(m.Payload, m.Client.ID, p.cfg.Now())
	return &out, nil
}

func (p *Plugin) matches(t []byte) bool {
	for _, f := range p.cfg.Filters {
		if codec.MatchTopic(f, t) {
			return true
		}
	}
	return false
}

// Enrich returns payload with clientID and at added (see the package doc).
func (p *Plugin) Enrich(payload []byte, clientID string, at time.Time) []byte {
	var ts json.RawMessage
	if p.cfg.TimeFormat == "unix_ms" {
		ts = strconv.AppendInt(nil, at.UnixMilli(), 10)
	} else {
		ts, _ = json.Marshal(at.UTC().Format(time.RFC3339Nano))
	}
	id, _ := json.Marshal(clientID)
	obj := map[string]json.RawMessage{}
	trimmed := bytes.TrimSpace(payload)
	switch {
	case len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, &obj) == nil:
	case len(trimmed) > 0 && json.Valid(trimmed):
		obj = map[string]json.RawMessage{p.cfg.WrapField: trimmed}
	case utf8.Valid(payload):
		s, _ := json.Marshal(string(payload))
		obj = map[string]json.RawMessage{p.cfg.WrapField: s}
	default:
		s, _ := json.Marshal(payload) // base64
		obj = map[string]json.RawMessage{p.cfg.WrapField: s, p.cfg.WrapField + "_encoding": json.RawMessage(`"base64"`)}
	}
	obj[p.cfg.ClientField] = id
	obj[p.cfg.TimeField] = ts
	b, err := json.Marshal(obj)
	if err != nil {
		panic("BUG: rewrite: an enriched payload did not marshal: " + err.Error())
	}
	return b
}
