package broker

import (
	"math"
	"strconv"
	"time"

	"github.com/mcutie/mcutie/codec"
)

// $SYS topics. Loop 0 publishes the broker's figures every
// Options.SysInterval as retained QoS 0 messages under $SYS/broker/, with
// Mosquitto's topic names and formats where Mosquitto has the figure, so
// tools written for it work unchanged. They go through the normal publish
// path (one Message per topic, shared by every subscriber, as any
// PUBLISH); they are not written to the store, since they describe the
// running process. A wildcard filter starting with '#' or '+' does not
// match them [MQTT-4.7.2-1] (router); "$SYS/#" does. Clients cannot
// publish there (isSys, handlePublish), so the figures are the broker's.

// sysLoad is one Mosquitto "load" figure: a per-minute rate, smoothed
// exponentially over 1, 5 and 15 minutes like a Unix load average.
type sysLoad struct {
	topic string // under $SYS/broker/load/, without the /1min suffix
	value func(*Stats) uint64
	last  uint64
	avg   [3]float64
}

var sysLoadWindows = [3]struct {
	suffix  string
	seconds float64
}{{"/1min", 60}, {"/5min", 300}, {"/15min", 900}}

// sysState is loop 0's $SYS publisher state. Loop-only (loop 0).
type sysState struct {
	next       int64 // unix ns of the next publication; 0 = first tick
	lastAt     int64 // unix ns of the last sample, for the load rates
	maxClients uint64
	loads      []sysLoad
	topic      []byte // scratch: topic being published
	payload    []byte // scratch: payload being published
}

func newSysState() *sysState {
	sum := func(a [3]uint64) uint64 { return a[0] + a[1] + a[2] }
	sumT := func(a [16]uint64) uint64 {
		var n uint64
		for _, v := range a {
			n += v
		}
		return n
	}
	return &sysState{loads: []sysLoad{
		{topic: "messages/received", value: func(s *Stats) uint64 { return sumT(s.PacketsIn) }},
		{topic: "messages/sent", value: func(s *Stats) uint64 { return sumT(s.PacketsOut) }},
		{topic: "publish/received", value: func(s *Stats) uint64 { return sum(s.PublishIn) }},
		{topic: "publish/sent", value: func(s *Stats) uint64 { return sum(s.PublishOut) }},
		{topic: "publish/dropped", value: func(s *Stats) uint64 { return sumDropped(s) }},
		{topic: "bytes/received", value: func(s *Stats) uint64 { return s.BytesIn }},
		{topic: "bytes/sent", value: func(s *Stats) uint64 { return s.BytesOut }},
		{topic: "connections", value: func(s *Stats) uint64 { return s.ConnectionsOpened }},
	}}
}

func sumDropped(s *Stats) uint64 {
	var n uint64
	for _, v := range s.Dropped {
		n += v
	}
	return n
}

// sysTick publishes the $SYS topics when they are due. Loop-only (loop 0).
func (l *Loop) sysTick() {
	b := l.b
	if l.idx != 0 || b.opts.SysInterval <= 0 || l.sys == nil {
		return
	}
	sy := l.sys
	if l.now < sy.next {
		return
	}
	sy.next = l.now + int64(b.opts.SysInterval)
	st := b.Stats()
	sy.maxClients = max(sy.maxClients, st.Connected)

	l.sysHeartbeat()
	l.sysString("version", "mcutie version "+b.opts.Version)
	uptime := (l.now - b.started) / int64(time.Second)
	sy.payload = append(strconv.AppendInt(sy.payload[:0], uptime, 10), " seconds"...)
	l.sysPublish("uptime")

	l.sysUint("clients/connected", st.Connected)
	l.sysUint("clients/disconnected", st.Sessions-min(st.Sessions, st.Connected))
	l.sysUint("clients/total", st.Sessions)
	l.sysUint("clients/maximum", sy.maxClients)
	l.sysUint("clients/expired", st.SessionsExpired)
	l.sysUint("messages/received", sy.loads[0].value(&st))
	l.sysUint("messages/sent", sy.loads[1].value(&st))
	l.sysUint("messages/inflight", st.Inflight)
	l.sysUint("messages/queued", st.Queued)
	l.sysUint("publish/messages/received", sy.loads[2].value(&st))
	l.sysUint("publish/messages/sent", sy.loads[3].value(&st))
	l.sysUint("publish/messages/dropped", sumDropped(&st))
	l.sysUint("publish/bytes/received", st.PayloadIn[0]+st.PayloadIn[1]+st.PayloadIn[2])
	l.sysUint("publish/bytes/sent", st.PayloadOut[0]+st.PayloadOut[1]+st.PayloadOut[2])
	l.sysUint("bytes/received", st.BytesIn)
	l.sysUint("bytes/sent", st.BytesOut)
	l.sysUint("subscriptions/count", st.Subscriptions+st.SharedSubscriptions)
	l.sysUint("shared_subscriptions/count", st.SharedSubscriptions)
	l.sysUint("retained messages/count", st.Retained)
	l.sysUint("store/messages/count", st.Inflight+st.Queued+st.Retained)

	// Load: the per-minute rate since the last sample, smoothed as
	// Mosquitto does (new = rate + e^(-dt/window)·(old - rate)).
	first := sy.lastAt == 0
	dt := float64(l.now-sy.lastAt) / float64(time.Second)
	sy.lastAt = l.now
	for i := range sy.loads {
		ld := &sy.loads[i]
		v := ld.value(&st)
		if !first && dt > 0 {
			rate := float64(v-min(v, ld.last)) * 60 / dt
			for w := range sysLoadWindows {
				e := math.Exp(-dt / sysLoadWindows[w].seconds)
				ld.avg[w] = rate + e*(ld.avg[w]-rate)
			}
		}
		ld.last = v
		for w, win := range sysLoadWindows {
			sy.payload = strconv.AppendFloat(sy.payload[:0], ld.avg[w], 'f', 2, 64)
			l.sysPublish("load/" + ld.topic + win.suffix)
		}
	}
}

func (l *Loop) sysUint(topic string, v uint64) {
	l.sys.payload = strconv.AppendUint(l.sys.payload[:0], v, 10)
	l.sysPublish(topic)
}

func (l *Loop) sysString(topic, v string) {
	l.sys.payload = append(l.sys.payload[:0], v...)
	l.sysPublish(topic)
}

// sysPublish routes $SYS/broker/<name> with the payload in l.sys.payload,
// retained, QoS 0, from no session.
func (l *Loop) sysPublish(name string) {
	sy := l.sys
	sy.topic = append(append(append(sy.topic[:0], l.b.opts.SysPrefix...), "/broker/"...), name...)
	p := codec.Publish{Topic: sy.topic, Payload: sy.payload, Retain: true}
	m := newMessage(&p, nil, l.now)
	l.publish(m, nil)
	m.release()
	l.counters.sysPublished++
}

// sysHeartbeat publishes <SysPrefix>/<node id>/heartbeat (not retained):
// {"node":…,"time":unix seconds,"uptime":seconds}. A monitor (or another
// node) that stops seeing it knows this broker is gone or stuck.
// Loop-only (loop 0).
func (l *Loop) sysHeartbeat() {
	b, sy := l.b, l.sys
	sy.topic = append(append(append(append(sy.topic[:0], b.opts.SysPrefix...), '/'), b.nodeID...), "/heartbeat"...)
	sy.payload = append(sy.payload[:0], `{"node":`...)
	sy.payload = strconv.AppendQuote(sy.payload, b.nodeID)
	sy.payload = append(sy.payload, `,"time":`...)
	sy.payload = strconv.AppendInt(sy.payload, l.now/int64(time.Second), 10)
	sy.payload = append(sy.payload, `,"uptime":`...)
	sy.payload = strconv.AppendInt(sy.payload, (l.now-b.started)/int64(time.Second), 10)
	sy.payload = append(sy.payload, '}')
	p := codec.Publish{Topic: sy.topic, Payload: sy.payload}
	m := newMessage(&p, nil, l.now)
	l.publish(m, nil)
	m.release()
	l.counters.sysPublished++
}

// sysClientEvent publishes a client's connected or disconnected event
// (Options.SysClientEvents) from its loop: QoS 0, not retained, JSON.
// Loop-only.
func (c *Client) sysClientEvent(event string, fields func(b []byte) []byte) {
	l, b := c.l, c.l.b
	topic := make([]byte, 0, len(b.opts.SysPrefix)+len(b.nodeID)+len(c.id)+32)
	topic = append(append(append(topic, b.opts.SysPrefix...), "/brokers/"...), b.nodeID...)
	topic = append(append(append(append(topic, "/clients/"...), c.id...), '/'), event...)
	payload := append([]byte(`{"clientid":`), strconv.Quote(c.id)...)
	hc := c.hookClient()
	payload = append(append(payload, `,"username":`...), strconv.Quote(hc.Username)...)
	payload = append(append(payload, `,"ipaddress":`...), strconv.Quote(hc.Remote)...)
	payload = fields(payload)
	payload = append(payload, '}')
	p := codec.Publish{Topic: topic, Payload: payload}
	m := newMessage(&p, nil, l.now)
	l.publish(m, nil)
	m.release()
	l.counters.sysPublished++
}
