//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"runtime"
	"strconv"
	"time"

	"github.com/mcutie/mcutie/bench/client"
	"github.com/mcutie/mcutie/codec"
)

// runner carries one run's configuration and report.
type runner struct {
	c      *config
	stderr io.Writer
	id     string // random run id: topics and client ids of one run never meet another's
	pfx    string // topic prefix, "bench/<id>/"
	base   time.Time
	srcs   []netip.Addr
	rep    *Report
}

// runBench runs the configured scenario and returns its report.
func runBench(c *config, stderr io.Writer) (*Report, error) {
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	r := &runner{c: c, stderr: stderr, id: hex.EncodeToString(rb[:]), base: time.Now()}
	if c.Loops == 0 {
		c.Loops = min(runtime.GOMAXPROCS(0), 8) // the engine's default, made explicit for the report
	}
	r.pfx = "bench/" + r.id + "/"
	r.rep = &Report{Scenario: c.Scenario, Description: r.describe(), Params: Params{
		Addr: c.addr.String(), MQTT: c.MQTT, QoS: c.QoS, Payload: c.Payload, Rate: c.Rate, Window: c.Window,
		Count: c.Count, DurationSec: c.Duration.Seconds(), KeepAlive: c.KeepAlive, Loops: c.Loops, SessionExpiry: c.SessionExpiry,
	}, Errors: []client.ErrorCount{}}
	p := &r.rep.Params
	conns := c.Publishers + c.Subscribers
	switch c.Scenario {
	case "connect", "idle":
		p.Conns, conns = c.Conns, c.Conns
	case "wildcard", "retained":
		p.Publishers, p.Subscribers, p.Topics = c.Publishers, c.Subscribers, c.Topics
	default:
		p.Publishers, p.Subscribers = c.Publishers, c.Subscribers
	}
	if err := raiseFDLimit(uint64(conns) + fdSpare); err != nil {
		return nil, err
	}
	r.srcs = sourceAddrs(c, conns)
	p.SourceAddrs = len(r.srcs)
	if c.PID > 0 {
		if _, err := procCPU(c.PID); err != nil {
			return nil, fmt.Errorf("bench: --pid %d: %v", c.PID, err)
		}
	}
	var err error
	switch c.Scenario {
	case "retained":
		err = r.retained()
	case "connect":
		err = r.connectStorm()
	case "idle":
		err = r.idle()
	default:
		subs, pubs := r.specs()
		err = r.pubsub(subs, pubs)
	}
	if err != nil {
		return nil, err
	}
	return r.rep, nil
}

// sourceAddrs picks the local addresses connections bind to: 127.0.0.1 …
// 127.0.0.N, N from --source-addrs or, when 0, enough for ~25k
// connections each (the ephemeral port range holds ~28k per address pair).
func sourceAddrs(c *config, conns int) []netip.Addr {
	n := c.SourceAddrs
	if n == 0 {
		n = (conns + 24_999) / 25_000
		if n <= 1 || !c.addr.Addr().Is4() {
			return nil
		}
	}
	out := make([]netip.Addr, 0, n)
	for i := 1; i <= min(n, 254); i++ {
		out = append(out, netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}))
	}
	return out
}

func (r *runner) describe() string {
	c := r.c
	q := fmt.Sprintf("QoS %d, %d B payload, MQTT level %d", c.QoS, c.Payload, c.MQTT)
	if c.SessionExpiry > 0 {
		q += fmt.Sprintf(", persistent sessions (expiry %d s)", c.SessionExpiry)
	}
	rate := "as fast as possible"
	if c.Rate > 0 {
		rate = fmt.Sprintf("%s msg/s per publisher", num(uint64(c.Rate)))
	}
	switch c.Scenario {
	case "fanin":
		return fmt.Sprintf("%d publishers → %d subscriber(s) on one topic, %s, %s", c.Publishers, c.Subscribers, q, rate)
	case "fanout":
		return fmt.Sprintf("%d publisher(s) → %d subscribers on one topic, %s, %s", c.Publishers, c.Subscribers, q, rate)
	case "p2p":
		return fmt.Sprintf("%d publisher→subscriber pairs, one topic each, %s, %s", c.Publishers, q, rate)
	case "shared":
		return fmt.Sprintf("%d publishers → $share group of %d, %s, %s", c.Publishers, c.Subscribers, q, rate)
	case "wildcard":
		return fmt.Sprintf("%d publishers over %d topics → %d subscribers on +/# filters, %s, %s", c.Publishers, c.Topics, c.Subscribers, q, rate)
	case "retained":
		return fmt.Sprintf("%d retained topics set by %d publisher(s), then %d subscriber(s) on #, %s", c.Topics, c.Publishers, c.Subscribers, q)
	case "connect":
		return fmt.Sprintf("connect storm of %d connections, %d at a time, MQTT level %d", c.Conns, c.ConnectConcurrency, c.MQTT)
	case "device":
		return fmt.Sprintf("%d devices, each on its own topic at %s msg/s (%s msg/s in all), phases spread, one PUBLISH per write → %d subscriber(s) on a + filter, %s",
			c.Publishers, strconv.FormatFloat(c.Rate, 'g', 4, 64), num(uint64(c.Rate*float64(c.Publishers)+0.5)), c.Subscribers, q)
	case "idle":
		return fmt.Sprintf("%d idle connections, keep-alive %d s, held %v, MQTT level %d", c.Conns, c.KeepAlive, c.Duration, c.MQTT)
	}
	return c.Scenario
}

func (r *runner) engine() (*client.Engine, error) {
	c := r.c
	return client.New(client.Options{
		Addr: c.addr, Loops: c.Loops, Version: codec.Version(c.MQTT), KeepAlive: uint16(c.KeepAlive),
		SourceAddrs: r.srcs, ConnectTimeout: c.ConnectTimeout, Base: r.base, SessionExpiry: uint32(c.SessionExpiry),
	})
}

func (r *runner) sub(i int, filters ...string) *client.Spec {
	return &client.Spec{ClientID: "bench-" + r.id + "-s" + strconv.Itoa(i), Filters: filters, SubQoS: byte(r.c.QoS), Track: true}
}

func (r *runner) pub(i int, topics ...string) *client.Spec {
	c := r.c
	return &client.Spec{ClientID: "bench-" + r.id + "-p" + strconv.Itoa(i), Pub: &client.PubSpec{
		ID: uint32(i), Topics: topics, QoS: byte(c.QoS), Payload: c.Payload, Rate: c.Rate, Window: c.Window, Count: c.Count,
	}}
}

// specs builds the connections of the publish/subscribe scenarios.
func (r *runner) specs() (subs, pubs []*client.Spec) {
	c := r.c
	switch c.Scenario {
	case "fanin", "fanout":
		t := r.pfx + c.Scenario
		for i := range c.Subscribers {
			subs = append(subs, r.sub(i, t))
		}
		for i := range c.Publishers {
			pubs = append(pubs, r.pub(i, t))
		}
	case "p2p":
		for i := range c.Publishers {
			t := r.pfx + "p2p/" + strconv.Itoa(i)
			subs = append(subs, r.sub(i, t))
			pubs = append(pubs, r.pub(i, t))
		}
	case "shared":
		t := r.pfx + "shared"
		for i := range c.Subscribers {
			s := r.sub(i, "$share/bench"+r.id+"/"+t)
			s.Group = "g"
			subs = append(subs, s)
		}
		for i := range c.Publishers {
			pubs = append(pubs, r.pub(i, t))
		}
	case "device":
		// Devices send at one rate with their phases spread evenly over
		// the interval: messages arrive one at a time, each alone in its
		// segment, as from independent devices (not in bursts per tick).
		for j := range c.Subscribers {
			subs = append(subs, r.sub(j, r.pfx+"dev/+/telemetry"))
		}
		for i := range c.Publishers {
			p := r.pub(i, r.pfx+"dev/"+strconv.Itoa(i)+"/telemetry")
			p.Pub.Phase = float64(i) / float64(c.Publishers)
			pubs = append(pubs, p)
		}
	case "wildcard":
		// Topic space bench/<id>/w/<a>/<b>: a < A, b < B, A·B ≥ topics.
		a := int(math.Ceil(math.Sqrt(float64(c.Topics))))
		b := (c.Topics + a - 1) / a
		topics := make([]string, 0, c.Topics)
		for i := range c.Topics {
			topics = append(topics, fmt.Sprintf("%sw/%d/%d", r.pfx, i/b, i%b))
		}
		for j := range c.Subscribers {
			var f string
			switch {
			case j == 0:
				f = r.pfx + "w/#"
			case j%2 == 1:
				f = fmt.Sprintf("%sw/%d/+", r.pfx, (j/2)%a)
			default:
				f = fmt.Sprintf("%sw/+/%d", r.pfx, (j/2)%b)
			}
			subs = append(subs, r.sub(j, f))
		}
		for i := range c.Publishers {
			off := i * len(topics) / c.Publishers // each publisher starts elsewhere in the space
			rot := append(append([]string{}, topics[off:]...), topics[:off]...)
			pubs = append(pubs, r.pub(i, rot...))
		}
	}
	return subs, pubs
}

// connect opens specs within a bound that grows with their number, and
// records failures in the report.
func (r *runner) connect(e *client.Engine, specs []*client.Spec) (client.ConnectResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second+time.Duration(len(specs))*time.Millisecond)
	defer cancel()
	cr := e.Connect(ctx, specs, client.ConnectOptions{Concurrency: r.c.ConnectConcurrency, Rate: r.c.ConnectRate})
	r.rep.Connections.Attempted += len(specs)
	if cr.OK == 0 && len(specs) > 0 {
		msg := "no connection came up"
		if len(cr.Errors) > 0 {
			msg = fmt.Sprintf("%s: %d × %s, first: %s", msg, cr.Errors[0].Count, cr.Errors[0].Name, cr.Errors[0].Sample)
		}
		return cr, fmt.Errorf("bench: %s (is a broker listening on %s?)", msg, r.c.addr)
	}
	return cr, nil
}

// sample is what is read at each end of the measured window.
type sample struct {
	at       time.Time
	ctr      client.Counters
	cpu, own time.Duration
	sched    time.Duration // the broker's on-CPU time from schedstat (procSchedCPU)
	switches uint64
}

func (r *runner) sample(e *client.Engine) sample {
	s := sample{at: time.Now(), own: selfCPU()}
	if e != nil {
		s.ctr = e.Counters()
	}
	if r.c.PID > 0 {
		s.cpu, _ = procCPU(r.c.PID)
		s.sched, _ = procSchedCPU(r.c.PID)
		s.switches, _ = procCtxSwitches(r.c.PID)
	}
	return s
}

// finishWindow fills the report's window, CPU and memory parts from two
// samples; delivered is the message (or connection) count CPU is divided by.
func (r *runner) finishWindow(s0, s1 sample, delivered uint64, perConn bool) {
	d := s1.at.Sub(s0.at)
	rep := r.rep
	rep.WindowSec = d.Seconds()
	rep.Client = ClientStats{CPUSec: (s1.own - s0.own).Seconds()}
	if d > 0 {
		rep.Client.Cores = rep.Client.CPUSec / d.Seconds()
	}
	if r.c.PID == 0 {
		return
	}
	br := &BrokerStats{PID: r.c.PID, CPUSec: (s1.cpu - s0.cpu).Seconds()}
	if d > 0 {
		br.Cores = br.CPUSec / d.Seconds()
	}
	if delivered > 0 {
		per := float64(s1.cpu-s0.cpu) / float64(time.Microsecond) / float64(delivered)
		if perConn {
			br.CPUMicrosPerCon = per
		} else {
			br.CPUMicrosPerMsg = per
		}
	}
	if s1.switches > s0.switches {
		br.CtxSwitches = s1.switches - s0.switches
		if delivered > 0 && !perConn {
			br.CtxSwitchesPerMsg = float64(br.CtxSwitches) / float64(delivered)
		}
	}
	br.RSS, br.PeakRSS, _ = procMem(r.c.PID)
	rep.Broker = br
	rep.Notes = append(rep.Notes, "broker CPU is read from /proc in 10 ms ticks; peak RSS is the process's peak since it started")
}

// progress prints one line on stderr when enabled and the run is long
// enough to need it.
type progress struct {
	r     *runner
	on    bool
	start time.Time
	last  client.Counters
}

func (r *runner) newProgress(start time.Time, c0 client.Counters) *progress {
	return &progress{r: r, on: r.c.Progress && r.c.Duration > 3*time.Second, start: start, last: c0}
}

func (p *progress) line(c client.Counters, now time.Time) {
	if !p.on {
		return
	}
	if p.r.c.Scenario == "idle" {
		fmt.Fprintf(p.r.stderr, "bench idle     %4.0fs  conns %6d  pings %d sent, %d answered  failed %d  dropped %d\n",
			now.Sub(p.start).Seconds(), c.Connected, c.PingsSent, c.PingsRecv, c.Failed, c.Dropped)
	} else {
		fmt.Fprintf(p.r.stderr, "bench %-8s %4.0fs  sent %10s/s  recv %10s/s  inflight %6d  conns %6d  failed %d  dropped %d\n",
			p.r.c.Scenario, now.Sub(p.start).Seconds(), num(c.Sent-p.last.Sent), num(c.Received-p.last.Received),
			c.Inflight, c.Connected, c.Failed, c.Dropped)
	}
	p.last = c
}

// hold runs the measured window until d has passed or done says so,
// printing progress every second.
func (r *runner) hold(e *client.Engine, s0 sample, d time.Duration, done func(client.Counters) bool) {
	p := r.newProgress(s0.at, s0.ctr)
	deadline := s0.at.Add(d)
	nextLine := s0.at.Add(time.Second)
	tk := time.NewTicker(5 * time.Millisecond)
	defer tk.Stop()
	for now := range tk.C {
		c := e.Counters()
		if !now.Before(deadline) || (done != nil && done(c)) {
			return
		}
		if !now.Before(nextLine) {
			p.line(c, now)
			nextLine = nextLine.Add(time.Second)
		}
	}
}

// drain waits, at most --drain, until no QoS 1/2 message of ours is in
// flight and nothing has arrived for a quiet spell.
func (r *runner) drain(e *client.Engine) {
	const quiet = 300 * time.Millisecond
	end := time.Now().Add(r.c.Drain)
	last := e.Counters().Received
	lastChange := time.Now()
	for time.Now().Before(end) {
		time.Sleep(10 * time.Millisecond)
		c := e.Counters()
		if c.Received != last {
			last, lastChange = c.Received, time.Now()
			continue
		}
		if c.Inflight == 0 && time.Since(lastChange) >= quiet {
			return
		}
	}
}

// pubsub runs fanin, fanout, p2p, shared and wildcard: subscribers first,
// then publishers, then the measured window, then the drain.
func (r *runner) pubsub(subs, pubs []*client.Spec) error {
	e, err := r.engine()
	if err != nil {
		return err
	}
	defer e.Close()
	if _, err := r.connect(e, subs); err != nil {
		return err
	}
	pr, err := r.connect(e, pubs)
	if err != nil {
		return err
	}
	s0 := r.sample(e)
	e.StartPublishing()
	var done func(client.Counters) bool
	if r.c.Count > 0 {
		done = func(c client.Counters) bool { return c.PubsDone >= uint64(pr.OK) }
	}
	r.hold(e, s0, r.c.Duration, done)
	s1 := r.sample(e)
	e.StopPublishing()
	r.drain(e)
	e.Close()
	t := client.Collect(e)
	r.fill(t, s0, s1)
	return nil
}

// fill puts the collected totals and window samples into the report.
func (r *runner) fill(t *client.Totals, s0, s1 sample) {
	rep := r.rep
	d := s1.at.Sub(s0.at)
	sent, recv := s1.ctr.Sent-s0.ctr.Sent, s1.ctr.Received-s0.ctr.Received
	rep.Messages = &MsgStats{
		Sent: sent, Received: recv, SentPerSec: perSec(sent, d), ReceivedPerSec: perSec(recv, d),
		SentTotal: t.Sent, ReceivedTotal: t.Received, Expected: t.Expected, Lost: t.Lost,
		Duplicated: t.Duplicated, OutOfOrder: t.OutOfOrder, Unexpected: t.Unexpected, Foreign: t.Foreign, Rejected: t.Rejected,
	}
	rep.Latency = latencyOf(t.Latency)
	r.conns(t)
	r.finishWindow(s0, s1, recv, false)
	if r.c.QoS == 0 && t.Lost > 0 {
		rep.Notes = append(rep.Notes, "QoS 0 may be dropped by design: a broker sheds QoS 0 to a subscriber that does not keep up")
	}
}

func (r *runner) conns(t *client.Totals) {
	cs := &r.rep.Connections
	cs.OK, cs.Failed, cs.Dropped = t.ConnOK, t.ConnFailed, t.Dropped
	cs.Connack = latencyOf(t.Connack)
	r.rep.Errors = append(r.rep.Errors, t.Errors...)
}

// retained sets K retained topics, then times subscribers receiving all of
// them, then clears them.
func (r *runner) retained() error {
	c := r.c
	k := c.Topics
	topics := make([]string, k)
	for i := range topics {
		topics[i] = r.pfx + "ret/" + strconv.Itoa(i)
	}
	// Phase 1: set. Publisher i gets an equal share of the topics.
	setter, err := r.engine()
	if err != nil {
		return err
	}
	defer setter.Close()
	var pubs []*client.Spec
	np := min(c.Publishers, k)
	for i := range np {
		share := topics[i*k/np : (i+1)*k/np]
		s := r.pub(i, share...)
		s.Pub.Retain, s.Pub.Count = true, uint64(len(share))
		pubs = append(pubs, s)
	}
	pr, err := r.connect(setter, pubs)
	if err != nil {
		return err
	}
	setStart := time.Now()
	setter.StartPublishing()
	r.hold(setter, r.sample(setter), c.Duration, func(x client.Counters) bool { return x.PubsDone >= uint64(pr.OK) })
	setDur := time.Since(setStart)
	setCtr := setter.Counters()
	setter.Close()
	if setCtr.PubsDone < uint64(pr.OK) {
		r.rep.Notes = append(r.rep.Notes, "not every retained message was acknowledged within --duration")
	}

	// Phase 2: subscribe and time delivery.
	getter, err := r.engine()
	if err != nil {
		return err
	}
	defer getter.Close()
	var subs []*client.Spec
	for i := range c.Subscribers {
		s := r.sub(i, r.pfx+"ret/#")
		s.LatencyFromSubscribe = true
		subs = append(subs, s)
	}
	s0 := r.sample(getter)
	sr, err := r.connect(getter, subs)
	if err != nil {
		return err
	}
	want := setCtr.Sent * uint64(sr.OK)
	r.hold(getter, s0, c.Duration, func(x client.Counters) bool { return x.Received >= want })
	s1 := r.sample(getter)
	r.drain(getter)
	getter.Close()
	t := client.Collect(setter, getter)

	// Phase 3: clear them (empty retained payloads), bounded.
	r.clearRetained(topics)

	r.fill(t, s0, s1)
	m := r.rep.Messages
	m.Sent, m.SentPerSec = setCtr.Sent, perSec(setCtr.Sent, setDur)
	rt := &RetainedStats{Topics: k, SetSec: setDur.Seconds(), DeliverSec: t.SinceSubscribe.Seconds(), Complete: t.Lost == 0 && m.ReceivedTotal >= want}
	if rt.DeliverSec > 0 {
		rt.PerSec = float64(k) / rt.DeliverSec
	}
	r.rep.Retained = rt
	if m.OutOfOrder > 0 {
		r.rep.Notes = append(r.rep.Notes, fmt.Sprintf("retained messages of different topics come in no defined order: %d arrivals before a lower sequence number are not counted as out of order", m.OutOfOrder))
		m.OutOfOrder = 0
	}
	r.rep.Notes = append(r.rep.Notes, "latency here is the time from SUBSCRIBE to each retained message")
	return nil
}

// clearRetained publishes an empty retained message to every topic, so a
// run leaves nothing behind in the broker. Failures only add a note.
func (r *runner) clearRetained(topics []string) {
	e, err := r.engine()
	if err != nil {
		return
	}
	defer e.Close()
	s := &client.Spec{ClientID: "bench-" + r.id + "-clear", Pub: &client.PubSpec{
		ID: 1 << 19, Topics: topics, QoS: 1, Retain: true, Payload: 0, Window: r.c.Window, Count: uint64(len(topics)),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cr := e.Connect(ctx, []*client.Spec{s}, client.ConnectOptions{}); cr.OK != 1 {
		r.rep.Notes = append(r.rep.Notes, "could not connect to clear the retained messages")
		return
	}
	e.StartPublishing()
	end := time.Now().Add(30 * time.Second)
	for e.Counters().PubsDone < 1 && time.Now().Before(end) {
		time.Sleep(5 * time.Millisecond)
	}
	if e.Counters().PubsDone < 1 {
		r.rep.Notes = append(r.rep.Notes, "clearing the retained messages did not finish within 30s")
	}
}

// connectStorm opens --conns connections as fast as allowed.
func (r *runner) connectStorm() error {
	c := r.c
	e, err := r.engine()
	if err != nil {
		return err
	}
	defer e.Close()
	specs := make([]*client.Spec, c.Conns)
	for i := range specs {
		specs[i] = &client.Spec{ClientID: "bench-" + r.id + "-c" + strconv.Itoa(i)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Duration)
	defer cancel()
	s0 := r.sample(e)
	cr := e.Connect(ctx, specs, client.ConnectOptions{Concurrency: c.ConnectConcurrency, Rate: c.ConnectRate})
	s1 := r.sample(e)
	r.rep.Connections.Attempted = len(specs)
	e.Close()
	t := client.Collect(e)
	r.conns(t)
	r.rep.Connections.PerSec = perSec(uint64(cr.OK), cr.Elapsed)
	r.finishWindow(s0, s1, uint64(cr.OK), true)
	if cr.OK == 0 {
		return fmt.Errorf("bench: no connection came up (is a broker listening on %s?): %v", c.addr, errorsOf(cr.Errors))
	}
	return nil
}

// idle holds --conns connections for --duration and measures the broker's
// RSS per connection.
func (r *runner) idle() error {
	c := r.c
	var rest *IdleStats
	if c.PID > 0 && c.Rest > 0 {
		// The broker with nobody connected: what it costs at rest.
		time.Sleep(c.RestSettle)
		s0 := r.sample(nil)
		time.Sleep(c.Rest)
		s1 := r.sample(nil)
		d := s1.at.Sub(s0.at).Seconds()
		rest = &IdleStats{RestSec: d, RestCPUMsPerSec: (s1.sched - s0.sched).Seconds() * 1e3 / d,
			RestSwitchPerSec: float64(s1.switches-s0.switches) / d}
	}
	var rss0 uint64
	if c.PID > 0 {
		rss0, _, _ = procMem(c.PID)
	}
	e, err := r.engine()
	if err != nil {
		return err
	}
	defer e.Close()
	specs := make([]*client.Spec, c.Conns)
	for i := range specs {
		specs[i] = &client.Spec{ClientID: "bench-" + r.id + "-i" + strconv.Itoa(i)}
	}
	cr, err := r.connect(e, specs)
	if err != nil {
		return err
	}
	time.Sleep(time.Second) // let the broker finish its per-connection work
	var rss1 uint64
	if c.PID > 0 {
		rss1, _, _ = procMem(c.PID)
	}
	s0 := r.sample(e)
	r.hold(e, s0, c.Duration, nil)
	s1 := r.sample(e)
	e.Close()
	t := client.Collect(e)
	r.conns(t)
	r.finishWindow(s0, s1, 0, false)
	id := &IdleStats{Held: uint64(cr.OK) - t.Dropped, PingsSent: s1.ctr.PingsSent, PingsRecv: s1.ctr.PingsRecv, RSSBefore: rss0, RSSAfter: rss1}
	if rest != nil {
		id.RestSec, id.RestCPUMsPerSec, id.RestSwitchPerSec = rest.RestSec, rest.RestCPUMsPerSec, rest.RestSwitchPerSec
	}
	if d := s1.at.Sub(s0.at).Seconds(); c.PID > 0 && d > 0 {
		id.HeldCPUMsPerSec = (s1.sched - s0.sched).Seconds() * 1e3 / d
		id.HeldSwitchPerSec = float64(s1.switches-s0.switches) / d
	}
	if c.PID > 0 && cr.OK > 0 && rss1 > rss0 {
		id.BytesPerConn = float64(rss1-rss0) / float64(cr.OK)
	}
	if c.PID == 0 {
		r.rep.Notes = append(r.rep.Notes, "pass --pid to measure the broker's RSS per connection")
	}
	r.rep.Idle = id
	return nil
}

func errorsOf(l []client.ErrorCount) error {
	var errs []error
	for _, e := range l {
		errs = append(errs, fmt.Errorf("%d × %s (first: %s)", e.Count, e.Name, e.Sample))
	}
	return errors.Join(errs...)
}
