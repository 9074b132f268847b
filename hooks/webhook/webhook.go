package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/hooks/internal/conf"
	"github.com/mcutie/mcutie/monitor/promtext"
)

// Config configures the plugin. Zero values take the defaults noted.
type Config struct {
	// Name labels the hook's metrics and logs (default "webhook").
	Name string `yaml:"name"`
	// URL receives the batches (required).
	URL string `yaml:"url"`
	// Events are the events sent (default all): connected,
	// disconnected, session_created, session_resumed,
	// session_terminated, subscribed, unsubscribed, published.
	Events []string `yaml:"events"`
	// Filters limit published to topics matching one of them (default
	// every topic).
	Filters []string `yaml:"filters"`
	// IncludePayload adds published messages' payloads.
	IncludePayload bool `yaml:"include_payload"`
	// BatchSize is the most events per POST (default 100); Interval the
	// longest an event waits for its batch to fill (default 1 s).
	BatchSize int           `yaml:"batch_size"`
	Interval  time.Duration `yaml:"interval"`
	// QueueSize bounds the events waiting to be sent (default 10000).
	QueueSize int `yaml:"queue_size"`
	// Retries of a failed batch (default 3; negative: none), waiting
	// Backoff (default 200 ms) doubling up to MaxBackoff (default 10 s).
	Retries    int           `yaml:"retries"`
	Backoff    time.Duration `yaml:"backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Timeout bounds one POST (default 5 s).
	Timeout time.Duration `yaml:"timeout"`
	// Headers are added to every request (e.g. Authorization).
	Headers map[string]string `yaml:"headers"`

	// Client makes the requests (default: a new http.Client); Logger
	// logs failed batches (default slog.Default). Not from YAML.
	Client *http.Client `yaml:"-"`
	Logger *slog.Logger `yaml:"-"`
}

// Event is one event as it is sent.
type Event struct {
	Event          string    `json:"event"`
	Time           time.Time `json:"time"`
	ClientID       string    `json:"clientid,omitempty"`
	Username       string    `json:"username,omitempty"`
	Remote         string    `json:"remote,omitempty"`
	Protocol       uint8     `json:"protocol,omitempty"`
	SessionPresent *bool     `json:"session_present,omitempty"`
	Reason         string    `json:"reason,omitempty"`
	Topic          string    `json:"topic,omitempty"`
	QoS            *byte     `json:"qos,omitempty"`
	Retain         *bool     `json:"retain,omitempty"`
	Origin         string    `json:"origin,omitempty"`
	Payload        []byte    `json:"payload,omitempty"`
}

// Shared values the events point at, so building one allocates nothing
// for them.
var (
	qosValues  = [3]byte{0, 1, 2}
	boolValues = [2]bool{false, true}
)

func boolPtr(b bool) *bool {
	if b {
		return &boolValues[1]
	}
	return &boolValues[0]
}

var eventNames = map[string]hooks.Event{
	"connected":          hooks.Connected,
	"disconnected":       hooks.Disconnected,
	"session_created":    hooks.SessionCreated,
	"session_resumed":    hooks.SessionResumed,
	"session_terminated": hooks.SessionTerminated,
	"subscribed":         hooks.Subscribed,
	"unsubscribed":       hooks.Unsubscribed,
	"published":          hooks.Publish,
}

// Plugin is the webhook. Create it with New; Registry.Add starts it.
type Plugin struct {
	cfg      Config
	provides hooks.Events
	queue    chan Event
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	started  atomic.Bool

	queued, sent, dropped, failed atomic.Uint64
	batchesOK, batchesFailed      atomic.Uint64
	retries                       atomic.Uint64
}

var (
	_ hooks.ConnectedHook    = (*Plugin)(nil)
	_ hooks.DisconnectedHook = (*Plugin)(nil)
	_ hooks.SessionHook      = (*Plugin)(nil)
	_ hooks.SubscribedHook   = (*Plugin)(nil)
	_ hooks.UnsubscribedHook = (*Plugin)(nil)
	_ hooks.PublishHook      = (*Plugin)(nil)
)

// New checks cfg and returns the plugin.
func New(cfg Config) (*Plugin, error) {
	if cfg.Name == "" {
		cfg.Name = "webhook"
	}
	if cfg.URL == "" {
		return nil, conf.Errorf("url", "required")
	}
	if err := conf.CheckURL("url", cfg.URL); err != nil {
		return nil, err
	}
	p := &Plugin{}
	if len(cfg.Events) == 0 {
		for _, e := range eventNames {
			p.provides |= hooks.EventsOf(e)
		}
	}
	for i, name := range cfg.Events {
		e, ok := eventNames[name]
		if !ok {
			return nil, conf.Errorf(fmt.Sprintf("events[%d]", i), "unknown event %q (want connected, disconnected, session_created, session_resumed, session_terminated, subscribed, unsubscribed or published)", name)
		}
		p.provides |= hooks.EventsOf(e)
	}
	for i, f := range cfg.Filters {
		if codec.ValidateTopicFilter([]byte(f)) != nil {
			return nil, conf.Errorf(fmt.Sprintf("filters[%d]", i), "%q is not a valid topic filter", f)
		}
	}
	for _, c := range []struct {
		path string
		neg  bool
	}{{"batch_size", cfg.BatchSize < 0}, {"interval", cfg.Interval < 0}, {"queue_size", cfg.QueueSize < 0},
		{"backoff", cfg.Backoff < 0}, {"max_backoff", cfg.MaxBackoff < 0}, {"timeout", cfg.Timeout < 0}} {
		if c.neg {
			return nil, conf.Errorf(c.path, "must not be negative")
		}
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.BatchSize, 100)
	def(&cfg.QueueSize, 10000)
	def(&cfg.Retries, 3)
	defD(&cfg.Interval, time.Second)
	defD(&cfg.Backoff, 200*time.Millisecond)
	defD(&cfg.MaxBackoff, 10*time.Second)
	defD(&cfg.Timeout, 5*time.Second)
	if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p.cfg = cfg
	p.queue = make(chan Event, cfg.QueueSize)
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	return p, nil
}

// Name is Config.Name.
func (p *Plugin) Name() string { return p.cfg.Name }

// Provides is the events of Config.Events.
func (p *Plugin) Provides() hooks.Events { return p.provides }

// Start starts the sender.
func (p *Plugin) Start() error {
	if p.started.CompareAndSwap(false, true) {
		go p.run()
	}
	return nil
}

// Stop sends what is queued (once each, no retries) and stops the
// sender. Call it after the broker has stopped.
func (p *Plugin) Stop() error {
	p.once.Do(func() { close(p.stop) })
	if p.started.Load() {
		<-p.done
	}
	return nil
}

// offer queues e without waiting. Safe for concurrent use.
func (p *Plugin) offer(e Event) {
	select {
	case p.queue <- e:
		p.queued.Add(1)
	default:
		p.dropped.Add(1)
	}
}

func clientEvent(name string, c *hooks.Client) Event {
	return Event{Event: name, Time: time.Now().UTC(), ClientID: c.ID, Username: c.Username, Remote: c.Remote, Protocol: uint8(c.Version)}
}

// OnConnected queues connected.
func (p *Plugin) OnConnected(c *hooks.Client, present bool) {
	e := clientEvent("connected", c)
	e.SessionPresent = boolPtr(present)
	p.offer(e)
}

// OnDisconnected queues disconnected with the close reason.
func (p *Plugin) OnDisconnected(c *hooks.Client, reason string) {
	e := clientEvent("disconnected", c)
	e.Reason = reason
	p.offer(e)
}

// OnSessionCreated, OnSessionResumed and OnSessionTerminated queue the
// session events.
func (p *Plugin) OnSessionCreated(id string) {
	p.offer(Event{Event: "session_created", Time: time.Now().UTC(), ClientID: id})
}

func (p *Plugin) OnSessionResumed(id string) {
	p.offer(Event{Event: "session_resumed", Time: time.Now().UTC(), ClientID: id})
}

func (p *Plugin) OnSessionTerminated(id string, why hooks.SessionEnd) {
	reason := "cleaned"
	switch why {
	case hooks.SessionExpired:
		reason = "expired"
	case hooks.SessionTakenOut:
		reason = "taken_over"
	}
	p.offer(Event{Event: "session_terminated", Time: time.Now().UTC(), ClientID: id, Reason: reason})
}

// OnSubscribed and OnUnsubscribed queue subscribed and unsubscribed.
func (p *Plugin) OnSubscribed(c *hooks.Client, filter []byte, qos byte) {
	e := clientEvent("subscribed", c)
	e.Topic = string(filter)
	e.QoS = &qosValues[min(qos, 2)]
	p.offer(e)
}

func (p *Plugin) OnUnsubscribed(c *hooks.Client, filter []byte) {
	e := clientEvent("unsubscribed", c)
	e.Topic = string(filter)
	p.offer(e)
}

var origins = [...]string{hooks.FromClient: "client", hooks.FromServer: "server", hooks.FromWill: "will", hooks.FromSys: "sys"}

// OnPublish queues published and passes the message on unchanged.
func (p *Plugin) OnPublish(m *hooks.Message) (*hooks.Message, error) {
	if len(p.cfg.Filters) > 0 && !p.matches(m.Topic) {
		return nil, nil
	}
	e := Event{Event: "published", Time: time.Now().UTC(), Topic: string(m.Topic), QoS: &qosValues[min(m.QoS, 2)], Retain: boolPtr(m.Retain)}
	if int(m.Origin) < len(origins) {
		e.Origin = origins[m.Origin]
	}
	if m.Client != nil {
		e.ClientID, e.Username, e.Protocol = m.Client.ID, m.Client.Username, uint8(m.Client.Version)
	}
	if p.cfg.IncludePayload {
		e.Payload = append([]byte{}, m.Payload...)
	}
	p.offer(e)
	return nil, nil
}

func (p *Plugin) matches(t []byte) bool {
	for _, f := range p.cfg.Filters {
		if codec.MatchTopic(f, t) {
			return true
		}
	}
	return false
}

// run batches the queue and sends the batches, until Stop.
func (p *Plugin) run() {
	defer close(p.done)
	batch := make([]Event, 0, p.cfg.BatchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		timer.Stop()
		if len(batch) > 0 {
			p.send(batch, true)
			clear(batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case e := <-p.queue:
			if len(batch) == 0 {
				timer.Reset(p.cfg.Interval)
			}
			batch = append(batch, e)
			if len(batch) >= p.cfg.BatchSize {
				flush()
			}
		case <-timer.C:
			flush()
		case <-p.stop:
			for {
				select {
				case e := <-p.queue:
					batch = append(batch, e)
					if len(batch) >= p.cfg.BatchSize {
						p.send(batch, false)
						batch = batch[:0]
					}
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				p.send(batch, false)
			}
			return
		}
	}
}

// send POSTs batch, retrying with backoff when retry is set and the
// plugin is not stopping.
func (p *Plugin) send(batch []Event, retry bool) {
	body, err := json.Marshal(batch)
	if err != nil {
		panic("BUG: webhook: an event did not marshal: " + err.Error())
	}
	wait := p.cfg.Backoff
	for attempt := 0; ; attempt++ {
		err = p.post(body)
		if err == nil {
			p.sent.Add(uint64(len(batch)))
			p.batchesOK.Add(1)
			return
		}
		if !retry || attempt >= p.cfg.Retries {
			break
		}
		select {
		case <-p.stop:
			retry = false
		case <-time.After(wait):
		}
		if !retry {
			break
		}
		p.retries.Add(1)
		wait = min(2*wait, p.cfg.MaxBackoff)
	}
	p.failed.Add(uint64(len(batch)))
	p.batchesFailed.Add(1)
	p.cfg.Logger.Warn("webhook: batch given up", "hook", p.cfg.Name, "events", len(batch), "err", err)
}

func (p *Plugin) post(body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range p.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook: %s answered %s", p.cfg.URL, resp.Status)
	}
	return nil
}

// Stats are the plugin's counters.
type Stats struct {
	Queued, Sent, Dropped, Failed, Retries uint64
	QueueLength                            int
}

// Stats returns the counters. Safe for concurrent use.
func (p *Plugin) Stats() Stats {
	return Stats{Queued: p.queued.Load(), Sent: p.sent.Load(), Dropped: p.dropped.Load(), Failed: p.failed.Load(), Retries: p.retries.Load(), QueueLength: len(p.queue)}
}

// The plugin's metric families (docs/hooks.md, docs/observability.md).
var (
	mEvents      = promtext.Counter("mcutie_webhook_events_total", "Events of a webhook plugin, by result: queued, sent, dropped (queue full), failed (given up after the retries).")
	mBatches     = promtext.Counter("mcutie_webhook_batches_total", "Batches a webhook plugin posted, by result: ok, failed.")
	mRetries     = promtext.Counter("mcutie_webhook_retries_total", "Batch posts a webhook plugin retried.")
	mQueueLength = promtext.Gauge("mcutie_webhook_queue_length", "Events waiting in a webhook plugin's queue.")
)

// WriteMetrics writes the counters in Prometheus text format. Safe for
// concurrent use.
func (p *Plugin) WriteMetrics(w io.Writer) {
	n := p.cfg.Name
	mEvents.Header(w)
	for _, c := range []struct {
		result string
		v      uint64
	}{{"queued", p.queued.Load()}, {"sent", p.sent.Load()}, {"dropped", p.dropped.Load()}, {"failed", p.failed.Load()}} {
		mEvents.Sample(w, promtext.Labels("hook", n, "result", c.result), c.v)
	}
	mBatches.Header(w)
	mBatches.Sample(w, promtext.Labels("hook", n, "result", "ok"), p.batchesOK.Load())
	mBatches.Sample(w, promtext.Labels("hook", n, "result", "failed"), p.batchesFailed.Load())
	mRetries.Header(w)
	mRetries.Sample(w, promtext.Labels("hook", n), p.retries.Load())
	mQueueLength.Header(w)
	mQueueLength.Sample(w, promtext.Labels("hook", n), uint64(len(p.queue)))
}
