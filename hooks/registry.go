package hooks

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/monitor/promtext"
)

// Options configure a Registry.
type Options struct {
	// Workers run the Connect hooks (default 4) and Queue bounds the
	// CONNECTs waiting for one (default 1024); a CONNECT beyond it is
	// refused (0x89 Server busy).
	Workers, Queue int
	// Timeout bounds a Connect hook's decision (default 5 s): past it the
	// CONNECT is refused.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Registry holds the hooks, in registration order, by event. Add and Stop
// are for set-up and shutdown; every other method is safe for concurrent
// use, and Has on a nil Registry reports false, so a broker without hooks
// pays one branch per event.
type Registry struct {
	opts     Options
	provides Events
	hooks    []*entry
	by       [numEvents][]*entry

	queue   chan func()
	stop    chan struct{}
	wg      sync.WaitGroup
	stopped atomic.Bool
	busy    atomic.Uint64 // Connect decisions refused: the queue was full
}

// entry is one registered hook with its counters.
type entry struct {
	h                      Hook
	panics, errs, timeouts atomic.Uint64
	calls                  [numEvents]atomic.Uint64
	seconds                *promtext.Histogram // Connect decisions' latency
}

// New returns an empty registry with its worker pool running.
func New(o Options) *Registry {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Queue <= 0 {
		o.Queue = 1024
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := &Registry{opts: o, queue: make(chan func(), o.Queue), stop: make(chan struct{})}
	for range o.Workers {
		r.wg.Add(1)
		go r.work()
	}
	return r
}

// Add registers h after the hooks already there, starting it first if it
// is a Starter. Not safe for concurrent use with anything else: call it
// before the broker runs.
func (r *Registry) Add(h Hook) error {
	for _, e := range r.hooks {
		if e.h.Name() == h.Name() {
			return fmt.Errorf("hooks: a hook named %s is already registered", h.Name())
		}
	}
	if s, ok := h.(Starter); ok {
		if err := s.Start(); err != nil {
			return fmt.Errorf("hooks: starting %s: %w", h.Name(), err)
		}
	}
	e := &entry{h: h}
	if h.Provides().Has(Connect) {
		e.seconds = promtext.NewHistogram(hookSecondsBounds...)
	}
	want := h.Provides()
	for ev := Event(0); ev < numEvents; ev++ {
		if !want.Has(ev) {
			continue
		}
		if !implements(h, ev) {
			return fmt.Errorf("hooks: %s provides %s but does not implement it", h.Name(), ev)
		}
		r.by[ev] = append(r.by[ev], e)
	}
	r.hooks = append(r.hooks, e)
	r.provides |= want
	return nil
}

func implements(h Hook, ev Event) bool {
	var ok bool
	switch ev {
	case PreConnect:
		_, ok = h.(PreConnectHook)
	case Connect:
		_, ok = h.(ConnectHook)
	case Connected:
		_, ok = h.(ConnectedHook)
	case Disconnected:
		_, ok = h.(DisconnectedHook)
	case SessionCreated, SessionResumed, SessionTerminated:
		_, ok = h.(SessionHook)
	case Subscribe:
		_, ok = h.(SubscribeHook)
	case Subscribed:
		_, ok = h.(SubscribedHook)
	case Unsubscribed:
		_, ok = h.(UnsubscribedHook)
	case PublishTopic:
		_, ok = h.(PublishTopicHook)
	case Publish:
		_, ok = h.(PublishHook)
	case WillPublished:
		_, ok = h.(WillHook)
	case RetainedChanged:
		_, ok = h.(RetainedHook)
	case Forward:
		_, ok = h.(ForwardHook)
	case Delivered:
		_, ok = h.(DeliveredHook)
	case Acked:
		_, ok = h.(AckedHook)
	case Dropped:
		_, ok = h.(DroppedHook)
	}
	return ok
}

// Has reports whether any hook provides ev. Safe on a nil Registry.
func (r *Registry) Has(ev Event) bool { return r != nil && r.provides.Has(ev) }

// Provided is the set of events some hook provides (none for a nil
// Registry): a caller may keep a copy once every hook is added.
func (r *Registry) Provided() Events {
	if r == nil {
		return 0
	}
	return r.provides
}

// Stop stops the worker pool and the hooks that are Stoppers, the last
// added first. Connect decisions still queued are refused.
func (r *Registry) Stop() error {
	if r == nil || !r.stopped.CompareAndSwap(false, true) {
		return nil
	}
	close(r.stop)
	r.wg.Wait()
	var errs []error
	for i := len(r.hooks) - 1; i >= 0; i-- {
		if s, ok := r.hooks[i].h.(Stopper); ok {
			if err := s.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("hooks: stopping %s: %w", r.hooks[i].h.Name(), err))
			}
		}
	}
	return errors.Join(errs...)
}

func (r *Registry) work() {
	defer r.wg.Done()
	for {
		select {
		case fn := <-r.queue:
			fn()
		case <-r.stop:
			return
		}
	}
}

// call runs fn for e's event ev, recovering a panic: it is logged, counted
// and reported as an error (a refusal).
func (r *Registry) call(e *entry, ev Event, fn func() error) (err error) {
	e.calls[ev].Add(1)
	defer func() {
		if p := recover(); p != nil {
			e.panics.Add(1)
			r.opts.Logger.Error("hook panicked; its call counts as a refusal", "hook", e.h.Name(), "event", ev.String(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("hooks: %s panicked in %s: %v", e.h.Name(), ev, p)
		}
	}()
	err = fn()
	if err != nil {
		e.errs.Add(1)
	}
	return err
}

// PreConnect asks the PreConnect hooks; the first error refuses.
func (r *Registry) PreConnect(remote netip.Addr, listener string) error {
	for _, e := range r.by[PreConnect] {
		h := e.h.(PreConnectHook)
		if err := r.call(e, PreConnect, func() error { return h.OnPreConnect(remote, listener) }); err != nil {
			return err
		}
	}
	return nil
}

// Connect asks the Connect hooks on the worker pool and calls done once
// with the first refusal, or nil when all allow; a hook past the timeout,
// or a full pool, refuses. c and p are copied first: the caller may reuse
// them as soon as Connect returns. Safe for concurrent use.
func (r *Registry) Connect(c *Client, p *codec.Connect, done func(error)) {
	cc := *c
	pc := CloneConnect(p)
	var once atomic.Bool
	finish := func(err error) {
		if once.CompareAndSwap(false, true) {
			done(err)
		}
	}
	timer := time.AfterFunc(r.opts.Timeout, func() {
		for _, e := range r.by[Connect] {
			e.timeouts.Add(1) // the hooks still deciding cannot be told apart: each is counted
		}
		finish(&codec.ReasonError{Code: codec.NotAuthorized, Reason: "connect hook timed out"})
	})
	job := func() {
		for _, e := range r.by[Connect] {
			if once.Load() {
				return // timed out meanwhile
			}
			h := e.h.(ConnectHook)
			start := time.Now()
			err := r.call(e, Connect, func() error { return h.OnConnect(&cc, pc) })
			e.seconds.Observe(time.Since(start).Seconds())
			if err != nil {
				timer.Stop()
				finish(err)
				return
			}
		}
		timer.Stop()
		finish(nil)
	}
	if r.stopped.Load() {
		timer.Stop()
		finish(&codec.ReasonError{Code: codec.ServerUnavailable, Reason: "server shutting down"})
		return
	}
	select {
	case r.queue <- job:
	default:
		timer.Stop()
		r.busy.Add(1)
		finish(&codec.ReasonError{Code: codec.ServerBusy, Reason: "connect hooks busy"})
	}
}

// CloneConnect copies what a Connect hook may read of p (nil: nil).
func CloneConnect(p *codec.Connect) *codec.Connect {
	if p == nil {
		return nil
	}
	c := *p
	c.ClientID = clone(p.ClientID)
	c.Username = clone(p.Username)
	c.Password = clone(p.Password)
	c.WillTopic = clone(p.WillTopic)
	c.WillPayload = clone(p.WillPayload)
	c.ProtocolName = clone(p.ProtocolName)
	c.Props = cloneProps(&p.Props)
	c.WillProps = cloneProps(&p.WillProps)
	return &c
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func cloneProps(p *codec.Properties) codec.Properties {
	c := *p
	c.ContentType = clone(p.ContentType)
	c.ResponseTopic = clone(p.ResponseTopic)
	c.CorrelationData = clone(p.CorrelationData)
	c.AuthMethod = clone(p.AuthMethod)
	c.AuthData = clone(p.AuthData)
	c.ReasonString = clone(p.ReasonString)
	c.ServerReference = clone(p.ServerReference)
	c.ResponseInfo = clone(p.ResponseInfo)
	c.AssignedClientID = clone(p.AssignedClientID)
	c.SubscriptionIDs = append([]uint32(nil), p.SubscriptionIDs...)
	c.User = make([]codec.UserProperty, len(p.User))
	for i, u := range p.User {
		c.User[i] = codec.UserProperty{Key: clone(u.Key), Value: clone(u.Value)}
	}
	return c
}

// Connected tells the Connected hooks.
func (r *Registry) Connected(c *Client, present bool) {
	for _, e := range r.by[Connected] {
		h := e.h.(ConnectedHook)
		_ = r.call(e, Connected, func() error { h.OnConnected(c, present); return nil })
	}
}

// Disconnected tells the Disconnected hooks.
func (r *Registry) Disconnected(c *Client, reason string) {
	for _, e := range r.by[Disconnected] {
		h := e.h.(DisconnectedHook)
		_ = r.call(e, Disconnected, func() error { h.OnDisconnected(c, reason); return nil })
	}
}

// SessionCreated, SessionResumed and SessionTerminated tell the Session
// hooks.
func (r *Registry) SessionCreated(id string) {
	for _, e := range r.by[SessionCreated] {
		h := e.h.(SessionHook)
		_ = r.call(e, SessionCreated, func() error { h.OnSessionCreated(id); return nil })
	}
}

func (r *Registry) SessionResumed(id string) {
	for _, e := range r.by[SessionResumed] {
		h := e.h.(SessionHook)
		_ = r.call(e, SessionResumed, func() error { h.OnSessionResumed(id); return nil })
	}
}

func (r *Registry) SessionTerminated(id string, why SessionEnd) {
	for _, e := range r.by[SessionTerminated] {
		h := e.h.(SessionHook)
		_ = r.call(e, SessionTerminated, func() error { h.OnSessionTerminated(id, why); return nil })
	}
}

// Subscribe asks the Subscribe hooks in turn, each seeing what the one
// before left in s; the first error refuses the filter.
func (r *Registry) Subscribe(c *Client, s *Subscription) error {
	for _, e := range r.by[Subscribe] {
		h := e.h.(SubscribeHook)
		if err := r.call(e, Subscribe, func() error { return h.OnSubscribe(c, s) }); err != nil {
			return err
		}
	}
	return nil
}

// Subscribed and Unsubscribed tell their hooks.
func (r *Registry) Subscribed(c *Client, filter []byte, qos byte) {
	for _, e := range r.by[Subscribed] {
		h := e.h.(SubscribedHook)
		_ = r.call(e, Subscribed, func() error { h.OnSubscribed(c, filter, qos); return nil })
	}
}

func (r *Registry) Unsubscribed(c *Client, filter []byte) {
	for _, e := range r.by[Unsubscribed] {
		h := e.h.(UnsubscribedHook)
		_ = r.call(e, Unsubscribed, func() error { h.OnUnsubscribed(c, filter); return nil })
	}
}

// PublishTopic runs the PublishTopic hooks in turn, each seeing the topic
// the one before returned; nil when none changed it. A hook that panics
// leaves the topic as it was.
func (r *Registry) PublishTopic(c *Client, topic []byte) []byte {
	var changed []byte
	for _, e := range r.by[PublishTopic] {
		h := e.h.(PublishTopicHook)
		cur := topic
		if changed != nil {
			cur = changed
		}
		var out []byte
		if r.call(e, PublishTopic, func() error { out = h.OnPublishTopic(c, cur); return nil }) == nil && out != nil {
			changed = out
		}
	}
	return changed
}

// Publish runs the Publish hooks in turn, each seeing the message the one
// before returned. It returns nil, nil when none changed m; the message to
// route instead; or an error: drop it.
func (r *Registry) Publish(m *Message) (*Message, error) {
	return r.chain(Publish, m, func(h Hook, cur *Message) (*Message, error) { return h.(PublishHook).OnPublish(cur) })
}

// chain runs the hooks of ev (an interceptor: Publish, Forward) in turn,
// each on the message the one before returned: nil, nil when none changed
// m; the message that results; or the first error.
func (r *Registry) chain(ev Event, m *Message, on func(Hook, *Message) (*Message, error)) (*Message, error) {
	var changed *Message
	for _, e := range r.by[ev] {
		cur := m
		if changed != nil {
			cur = changed
		}
		var out *Message
		err := r.call(e, ev, func() error {
			var err error
			out, err = on(e.h, cur)
			return err
		})
		if err != nil {
			return nil, err
		}
		if out != nil {
			changed = out
		}
	}
	return changed, nil
}

// WillPublished and RetainedChanged tell their hooks.
func (r *Registry) WillPublished(id string, m *Message) {
	for _, e := range r.by[WillPublished] {
		h := e.h.(WillHook)
		_ = r.call(e, WillPublished, func() error { h.OnWillPublished(id, m); return nil })
	}
}

func (r *Registry) RetainedChanged(m *Message) {
	for _, e := range r.by[RetainedChanged] {
		h := e.h.(RetainedHook)
		_ = r.call(e, RetainedChanged, func() error { h.OnRetainedChanged(m); return nil })
	}
}

// Forward runs the Forward hooks in turn on one delivery, each seeing the
// message the one before returned: nil, nil passes it unchanged; a
// message is this subscriber's copy; an error drops it.
func (r *Registry) Forward(to *Client, m *Message) (*Message, error) {
	return r.chain(Forward, m, func(h Hook, cur *Message) (*Message, error) { return h.(ForwardHook).OnForward(to, cur) })
}

// Delivered, Acked and Dropped tell their hooks.
func (r *Registry) Delivered(to *Client, m *Message, qos byte) {
	for _, e := range r.by[Delivered] {
		h := e.h.(DeliveredHook)
		_ = r.call(e, Delivered, func() error { h.OnDelivered(to, m, qos); return nil })
	}
}

func (r *Registry) Acked(to *Client, m *Message) {
	for _, e := range r.by[Acked] {
		h := e.h.(AckedHook)
		_ = r.call(e, Acked, func() error { h.OnAcked(to, m); return nil })
	}
}

func (r *Registry) Dropped(to *Client, m *Message, reason string) {
	for _, e := range r.by[Dropped] {
		h := e.h.(DroppedHook)
		_ = r.call(e, Dropped, func() error { h.OnDropped(to, m, reason); return nil })
	}
}

// The hooks' metric families (docs/observability.md, docs/hooks.md).
var (
	mHookCalls    = promtext.Counter("mcutie_hook_calls_total", "Calls of a hook, by hook and event.")
	mHookPanics   = promtext.Counter("mcutie_hook_panics_total", "Panics recovered in a hook (the call counts as a refusal).")
	mHookRefusals = promtext.Counter("mcutie_hook_refusals_total", "Calls a hook refused (returned an error), panics included.")
	mHookTimeouts = promtext.Counter("mcutie_hook_timeouts_total", "Connect decisions of a hook that took longer than the hooks' timeout (the CONNECT is refused).")
	mHookSeconds  = promtext.HistogramFamily("mcutie_hook_connect_seconds", "Time a Connect hook took to decide.")
	mHookBusy     = promtext.Counter("mcutie_hook_connect_busy_total", "CONNECTs refused (server busy) because the Connect hooks' queue was full.")
)

// hookSecondsBounds are the buckets of mcutie_hook_connect_seconds: a
// local decision takes microseconds, an HTTP call milliseconds, and the
// timeout (default 5 s) ends the rest.
var hookSecondsBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// WriteMetrics writes the hooks' counters and latency in Prometheus text
// format. Safe for concurrent use.
func (r *Registry) WriteMetrics(w io.Writer) {
	if r == nil {
		return
	}
	mHookCalls.Header(w)
	for _, e := range r.hooks {
		for ev := Event(0); ev < numEvents; ev++ {
			if e.h.Provides().Has(ev) {
				mHookCalls.Sample(w, promtext.Labels("hook", e.h.Name(), "event", ev.String()), e.calls[ev].Load())
			}
		}
	}
	mHookPanics.Header(w)
	for _, e := range r.hooks {
		mHookPanics.Sample(w, promtext.Labels("hook", e.h.Name()), e.panics.Load())
	}
	mHookRefusals.Header(w)
	for _, e := range r.hooks {
		mHookRefusals.Sample(w, promtext.Labels("hook", e.h.Name()), e.errs.Load())
	}
	mHookTimeouts.Header(w)
	for _, e := range r.hooks {
		if e.seconds != nil {
			mHookTimeouts.Sample(w, promtext.Labels("hook", e.h.Name()), e.timeouts.Load())
		}
	}
	mHookSeconds.Header(w)
	for _, e := range r.hooks {
		if e.seconds != nil {
			mHookSeconds.Histogram(w, promtext.Labels("hook", e.h.Name()), e.seconds)
		}
	}
	mHookBusy.Write(w, r.busy.Load())
}

// Stats are a hook's counters (tests, the embedding API).
type Stats struct {
	Calls                   [numEvents]uint64
	Panics, Errors, Timeout uint64
}

// HookStats returns the counters of the hook named name.
func (r *Registry) HookStats(name string) (Stats, bool) {
	for _, e := range r.hooks {
		if e.h.Name() == name {
			var s Stats
			for i := range e.calls {
				s.Calls[i] = e.calls[i].Load()
			}
			s.Panics, s.Errors, s.Timeout = e.panics.Load(), e.errs.Load(), e.timeouts.Load()
			return s, true
		}
	}
	return Stats{}, false
}
