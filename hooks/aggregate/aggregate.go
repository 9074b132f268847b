package aggregate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/hooks/internal/conf"
	"github.com/mcutie/mcutie/monitor/promtext"
)

// Publisher publishes a message from the server side; *broker.Broker is
// one. Safe for concurrent use.
type Publisher interface {
	Publish(topic string, payload []byte, qos byte, retain bool) error
}

// Rule is one aggregation.
type Rule struct {
	// Filter selects the messages (MQTT filter, wildcards allowed).
	Filter string `yaml:"filter"`
	// Output is the topic the results are published on.
	Output string `yaml:"output"`
	// Count ends a window after this many values; Window after this
	// much time (give one or both).
	Count  int           `yaml:"count"`
	Window time.Duration `yaml:"window"`
	// Field is the dotted path of the number in a JSON object payload
	// (empty: the payload is the number).
	Field string `yaml:"field"`
	// Functions are the results published: min, max, avg, sum, count
	// (default all).
	Functions []string `yaml:"functions"`
	QoS       byte     `yaml:"qos"`
	Retain    bool     `yaml:"retain"`
}

// Config configures the plugin.
type Config struct {
	// Name labels the hook's metrics and logs (default "aggregate").
	Name  string `yaml:"name"`
	Rules []Rule `yaml:"rules"`
	// Queue bounds the results waiting to be published (default 1024).
	Queue int `yaml:"queue"`
	// Logger logs failed publishes (default slog.Default). Not from YAML.
	Logger *slog.Logger `yaml:"-"`
}

const (
	fnMin = 1 << iota
	fnMax
	fnAvg
	fnSum
	fnCount
	fnAll = fnMin | fnMax | fnAvg | fnSum | fnCount
)

var fnNames = map[string]int{"min": fnMin, "max": fnMax, "avg": fnAvg, "sum": fnSum, "count": fnCount}

// rule is a Rule with its window. Its mutex guards the window.
type rule struct {
	Rule
	path []string
	fns  int

	mu         sync.Mutex
	n          int
	min, max   float64
	sum        float64
	start, end time.Time

	values, skipped, published, dropped, errs atomic.Uint64
}

// result is a window's reduction, to publish.
type result struct {
	r       *rule
	payload []byte
}

// Plugin is the aggregation hook. Create it with New; Registry.Add starts
// it.
type Plugin struct {
	cfg     Config
	rules   []*rule
	outputs map[string]bool
	pub     atomic.Pointer[publisherBox]
	results chan result
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

type publisherBox struct{ p Publisher }

var _ hooks.PublishHook = (*Plugin)(nil)

// New checks cfg and returns the plugin.
func New(cfg Config) (*Plugin, error) {
	if cfg.Name == "" {
		cfg.Name = "aggregate"
	}
	if cfg.Queue < 0 {
		return nil, conf.Errorf("queue", "must not be negative")
	}
	if cfg.Queue == 0 {
		cfg.Queue = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if len(cfg.Rules) == 0 {
		return nil, conf.Errorf("rules", "give at least one rule")
	}
	p := &Plugin{cfg: cfg, outputs: map[string]bool{}, results: make(chan result, cfg.Queue), stop: make(chan struct{})}
	for i, r := range cfg.Rules {
		at := func(f string) string { return fmt.Sprintf("rules[%d].%s", i, f) }
		if codec.ValidateTopicFilter([]byte(r.Filter)) != nil {
			return nil, conf.Errorf(at("filter"), "%q is not a valid topic filter", r.Filter)
		}
		if r.Output == "" || strings.ContainsAny(r.Output, "+#") {
			return nil, conf.Errorf(at("output"), "%q is not a topic name (no wildcards)", r.Output)
		}
		if r.Count < 0 || r.Window < 0 || (r.Count == 0 && r.Window == 0) {
			return nil, conf.Errorf(at("count"), "give count (values) or window (a duration), or both, positive")
		}
		if r.QoS > 2 {
			return nil, conf.Errorf(at("qos"), "must be 0, 1 or 2")
		}
		ru := &rule{Rule: r}
		if r.Field != "" {
			ru.path = strings.Split(r.Field, ".")
		}
		for j, f := range r.Functions {
			b, ok := fnNames[f]
			if !ok {
				return nil, conf.Errorf(fmt.Sprintf("rules[%d].functions[%d]", i, j), "unknown function %q (want min, max, avg, sum or count)", f)
			}
			ru.fns |= b
		}
		if ru.fns == 0 {
			ru.fns = fnAll
		}
		p.rules = append(p.rules, ru)
		p.outputs[r.Output] = true
	}
	// A result matched by a filter would be aggregated again: refused.
	for i, r := range p.rules {
		for _, o := range p.rules {
			if codec.MatchTopic(o.Filter, []byte(r.Output)) {
				return nil, conf.Errorf(fmt.Sprintf("rules[%d].output", i), "%q matches the filter %q: its results would be aggregated again", r.Output, o.Filter)
			}
		}
	}
	return p, nil
}

// Name is Config.Name.
func (p *Plugin) Name() string { return p.cfg.Name }

// Provides is Publish.
func (p *Plugin) Provides() hooks.Events { return hooks.EventsOf(hooks.Publish) }

// SetPublisher sets where results go (the broker, once made). Safe for
// concurrent use.
func (p *Plugin) SetPublisher(pub Publisher) { p.pub.Store(&publisherBox{pub}) }

// Start starts the publisher and the time windows.
func (p *Plugin) Start() error {
	p.wg.Add(1)
	go p.publishLoop()
	for _, r := range p.rules {
		if r.Window > 0 {
			p.wg.Add(1)
			go p.windowLoop(r)
		}
	}
	return nil
}

// Stop ends the windows (a window in progress is not published) and the
// publisher.
func (p *Plugin) Stop() error {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
	return nil
}

// OnPublish adds m's value to the windows of the rules it matches and
// passes it on unchanged. Called on the loops; never waits.
func (p *Plugin) OnPublish(m *hooks.Message) (*hooks.Message, error) {
	if m.Origin == hooks.FromServer && p.outputs[string(m.Topic)] {
		return nil, nil // our own result
	}
	now := time.Time{}
	for _, r := range p.rules {
		if !codec.MatchTopic(r.Filter, m.Topic) {
			continue
		}
		v, ok := value(m.Payload, r.path)
		if !ok {
			r.skipped.Add(1)
			continue
		}
		if now.IsZero() {
			now = time.Now()
		}
		r.values.Add(1)
		if res, full := r.add(v, now); full {
			p.emit(r, res)
		}
	}
	return nil, nil
}

// add puts v in r's window; when that fills it (Count) it returns the
// window's result and starts a new one.
func (r *rule) add(v float64, now time.Time) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		r.min, r.max, r.sum, r.start = v, v, 0, now
	}
	r.n++
	r.min, r.max, r.sum, r.end = math.Min(r.min, v), math.Max(r.max, v), r.sum+v, now
	if r.Count > 0 && r.n >= r.Count {
		return r.take(), true
	}
	return nil, false
}

// take returns the window's result and empties it. r.mu held, r.n > 0.
func (r *rule) take() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	sep := ""
	put := func(fn int, name string, v float64) {
		if r.fns&fn != 0 {
			b.WriteString(sep + `"` + name + `":` + strconv.FormatFloat(v, 'g', -1, 64))
			sep = ","
		}
	}
	put(fnCount, "count", float64(r.n))
	put(fnMin, "min", r.min)
	put(fnMax, "max", r.max)
	put(fnAvg, "avg", r.sum/float64(r.n))
	put(fnSum, "sum", r.sum)
	b.WriteString(sep + `"start":"` + r.start.UTC().Format(time.RFC3339Nano) + `","end":"` + r.end.UTC().Format(time.RFC3339Nano) + `"}`)
	r.n = 0
	return b.Bytes()
}

// emit offers a result to the publisher without waiting.
func (p *Plugin) emit(r *rule, payload []byte) {
	select {
	case p.results <- result{r, payload}:
	default:
		r.dropped.Add(1)
	}
}

func (p *Plugin) windowLoop(r *rule) {
	defer p.wg.Done()
	t := time.NewTicker(r.Window)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			r.mu.Lock()
			var res []byte
			if r.n > 0 {
				res = r.take()
			}
			r.mu.Unlock()
			if res != nil {
				p.emit(r, res)
			}
		}
	}
}

func (p *Plugin) publishLoop() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case res := <-p.results:
			box := p.pub.Load()
			if box == nil {
				res.r.dropped.Add(1)
				continue
			}
			if err := box.p.Publish(res.r.Output, res.payload, res.r.QoS, res.r.Retain); err != nil {
				res.r.errs.Add(1)
				p.cfg.Logger.Warn("aggregate: cannot publish a result", "hook", p.cfg.Name, "output", res.r.Output, "err", err)
				continue
			}
			res.r.published.Add(1)
		}
	}
}

// value reads the number in payload: the payload itself when path is
// empty, else the JSON object's field at path.
func value(payload []byte, path []string) (float64, bool) {
	if len(path) == 0 {
		v, err := strconv.ParseFloat(string(bytes.TrimSpace(payload)), 64)
		return v, err == nil && !math.IsInf(v, 0) && !math.IsNaN(v)
	}
	var doc any
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		return 0, false
	}
	for _, k := range path {
		obj, ok := doc.(map[string]any)
		if !ok {
			return 0, false
		}
		if doc, ok = obj[k]; !ok {
			return 0, false
		}
	}
	n, ok := doc.(json.Number)
	if !ok {
		return 0, false
	}
	v, err := n.Float64()
	return v, err == nil
}

// RuleStats are one rule's counters.
type RuleStats struct {
	Values, Skipped, Published, Dropped, Errors uint64
}

// Stats returns the counters of the rule publishing on output.
func (p *Plugin) Stats(output string) (RuleStats, bool) {
	for _, r := range p.rules {
		if r.Output == output {
			return RuleStats{r.values.Load(), r.skipped.Load(), r.published.Load(), r.dropped.Load(), r.errs.Load()}, true
		}
	}
	return RuleStats{}, false
}

// The plugin's metric families (docs/hooks.md, docs/observability.md).
var (
	mValues  = promtext.Counter("mcutie_aggregate_values_total", "Numbers an aggregate rule took in, by output topic.")
	mSkipped = promtext.Counter("mcutie_aggregate_skipped_total", "Messages an aggregate rule skipped because their payload was not a number, by output topic.")
	mResults = promtext.Counter("mcutie_aggregate_results_total", "Results an aggregate rule produced, by output topic and result: published, dropped, error.")
)

// WriteMetrics writes the counters in Prometheus text format. Safe for
// concurrent use.
func (p *Plugin) WriteMetrics(w io.Writer) {
	mValues.Header(w)
	for _, r := range p.rules {
		mValues.Sample(w, promtext.Labels("hook", p.cfg.Name, "output", r.Output), r.values.Load())
	}
	mSkipped.Header(w)
	for _, r := range p.rules {
		mSkipped.Sample(w, promtext.Labels("hook", p.cfg.Name, "output", r.Output), r.skipped.Load())
	}
	mResults.Header(w)
	for _, r := range p.rules {
		for _, c := range []struct {
			result string
			v      uint64
		}{{"published", r.published.Load()}, {"dropped", r.dropped.Load()}, {"error", r.errs.Load()}} {
			mResults.Sample(w, promtext.Labels("hook", p.cfg.Name, "output", r.Output, "result", c.result), c.v)
		}
	}
}
