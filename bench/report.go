//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/mcutie/mcutie/bench/client"
)

// Report is the result of one run; --json prints it as is.
type Report struct {
	Scenario    string              `json:"scenario"`
	Description string              `json:"description"`
	Params      Params              `json:"params"`
	WindowSec   float64             `json:"window_s"` // the measured window: rates and CPU are over it
	Connections ConnStats           `json:"connections"`
	Messages    *MsgStats           `json:"messages,omitempty"`
	Latency     *Latency            `json:"latency_us,omitempty"`
	Retained    *RetainedStats      `json:"retained,omitempty"`
	Idle        *IdleStats          `json:"idle,omitempty"`
	Broker      *BrokerStats        `json:"broker,omitempty"`
	Client      ClientStats         `json:"client"`
	Errors      []client.ErrorCount `json:"errors"`
	Notes       []string            `json:"notes,omitempty"`
}

// Params echoes the effective flags.
type Params struct {
	Addr        string  `json:"addr"`
	MQTT        int     `json:"mqtt"`
	QoS         int     `json:"qos"`
	Payload     int     `json:"payload_bytes"`
	Publishers  int     `json:"publishers,omitempty"`
	Subscribers int     `json:"subscribers,omitempty"`
	Topics      int     `json:"topics,omitempty"`
	Conns       int     `json:"conns,omitempty"`
	Rate        float64 `json:"rate_per_publisher"`
	Window      int     `json:"window"`
	Count       uint64  `json:"count,omitempty"`
	DurationSec float64 `json:"duration_s"`
	KeepAlive   int     `json:"keepalive_s"`
	Loops       int     `json:"loops"`
	SourceAddrs int     `json:"source_addrs"`
	// SessionExpiry is --session-expiry: 0 clean sessions, else persistent.
	SessionExpiry uint `json:"session_expiry_s"`
}

// ConnStats are the connection outcomes.
type ConnStats struct {
	Attempted int      `json:"attempted"`
	OK        uint64   `json:"ok"`
	Failed    uint64   `json:"failed"`
	Dropped   uint64   `json:"dropped"` // closed by the broker or an error after they were up
	PerSec    float64  `json:"per_sec"` // connect: CONNACKs per second over the storm
	Connack   *Latency `json:"connack_latency_us,omitempty"`
}

// MsgStats are the message counts. Sent and Received are over the measured
// window (the rates' numerators); the totals include the drain after it.
type MsgStats struct {
	Sent           uint64  `json:"sent"`
	Received       uint64  `json:"received"`
	SentPerSec     float64 `json:"sent_per_sec"`
	ReceivedPerSec float64 `json:"received_per_sec"`
	SentTotal      uint64  `json:"sent_total"`
	ReceivedTotal  uint64  `json:"received_total"`
	Expected       uint64  `json:"expected"`
	Lost           uint64  `json:"lost"`
	Duplicated     uint64  `json:"duplicated"`
	OutOfOrder     uint64  `json:"out_of_order"`
	Unexpected     uint64  `json:"unexpected"`
	Foreign        uint64  `json:"foreign"`
	Rejected       uint64  `json:"rejected"` // v5 PUBACK/PUBREC with an error reason code
}

// Latency holds percentiles in microseconds.
type Latency struct {
	Count int64   `json:"count"`
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p99_9"`
	Max   int64   `json:"max"`
	Mean  float64 `json:"mean"`
}

// RetainedStats are the retained scenario's timings.
type RetainedStats struct {
	Topics     int     `json:"topics"`
	SetSec     float64 `json:"set_s"`     // publishing them, all acknowledged
	DeliverSec float64 `json:"deliver_s"` // SUBSCRIBE → the last one, slowest subscriber
	PerSec     float64 `json:"per_sec"`   // topics / deliver_s
	Complete   bool    `json:"complete"`  // every subscriber got every message
}

// IdleStats are the idle scenario's numbers.
type IdleStats struct {
	Held         uint64  `json:"held"`
	PingsSent    uint64  `json:"pings_sent"`
	PingsRecv    uint64  `json:"pings_received"`
	RSSBefore    uint64  `json:"broker_rss_before_bytes,omitempty"`
	RSSAfter     uint64  `json:"broker_rss_after_bytes,omitempty"`
	BytesPerConn float64 `json:"broker_bytes_per_conn,omitempty"`
	// The broker at rest (--rest), before the bench connects, and with
	// the connections held (the measured window), per second: CPU (ms on
	// a CPU, from /proc/PID/task/*/schedstat) and context switches of all
	// its threads.
	RestSec          float64 `json:"rest_s,omitempty"`
	RestCPUMsPerSec  float64 `json:"broker_rest_cpu_ms_per_s,omitempty"`
	RestSwitchPerSec float64 `json:"broker_rest_switches_per_s,omitempty"`
	HeldCPUMsPerSec  float64 `json:"broker_held_cpu_ms_per_s,omitempty"`
	HeldSwitchPerSec float64 `json:"broker_held_switches_per_s,omitempty"`
}

// BrokerStats come from /proc/PID of --pid.
type BrokerStats struct {
	PID             int     `json:"pid"`
	CPUSec          float64 `json:"cpu_s"`                     // utime+stime over the window
	Cores           float64 `json:"cores"`                     // cpu_s / window_s
	CPUMicrosPerMsg float64 `json:"cpu_us_per_msg,omitempty"`  // per delivered message
	CPUMicrosPerCon float64 `json:"cpu_us_per_conn,omitempty"` // connect: per connection
	RSS             uint64  `json:"rss_bytes"`
	PeakRSS         uint64  `json:"peak_rss_bytes"` // VmHWM: the process's peak since it started
	// CtxSwitches are the context switches of all the broker's threads
	// over the window; per message, the wake-ups a message costs.
	CtxSwitches       uint64  `json:"ctx_switches"`
	CtxSwitchesPerMsg float64 `json:"ctx_switches_per_msg"`
}

// ClientStats describe the load generator itself.
type ClientStats struct {
	CPUSec float64 `json:"cpu_s"` // this process over the window
	Cores  float64 `json:"cores"`
}

func latencyOf(h *hdrhistogram.Histogram) *Latency {
	if h == nil || h.TotalCount() == 0 {
		return nil
	}
	return &Latency{Count: h.TotalCount(), P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90),
		P99: h.ValueAtQuantile(99), P999: h.ValueAtQuantile(99.9), Max: h.Max(), Mean: h.Mean()}
}

func perSec(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// writeJSON prints r as indented JSON.
func (r *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeTable prints r for people.
func (r *Report) writeTable(w io.Writer) {
	var b strings.Builder
	row := func(k, format string, a ...any) { fmt.Fprintf(&b, "  %-18s "+format+"\n", append([]any{k}, a...)...) }
	fmt.Fprintf(&b, "%s: %s\n", r.Scenario, r.Description)
	c := r.Connections
	row("connections", "%s ok, %s failed, %s dropped", num(c.OK), num(c.Failed), num(c.Dropped))
	if c.PerSec > 0 {
		row("connect rate", "%s conn/s", rate(c.PerSec))
	}
	if c.Connack != nil {
		row("CONNACK latency", "%s", latRow(c.Connack))
	}
	if m := r.Messages; m != nil {
		row("window", "%.2f s", r.WindowSec)
		row("sent", "%12s msg/s   (%s msgs)", rate(m.SentPerSec), num(m.Sent))
		row("received", "%12s msg/s   (%s msgs)", rate(m.ReceivedPerSec), num(m.Received))
		row("lost/dup/ooo", "%s / %s / %s   (of %s expected, %s received in all)", num(m.Lost), num(m.Duplicated), num(m.OutOfOrder), num(m.Expected), num(m.ReceivedTotal))
		if m.Unexpected+m.Foreign+m.Rejected > 0 {
			row("anomalies", "%s unexpected, %s foreign payloads, %s rejected by the broker", num(m.Unexpected), num(m.Foreign), num(m.Rejected))
		}
	}
	if r.Latency != nil {
		row("latency", "%s", latRow(r.Latency))
	}
	if rt := r.Retained; rt != nil {
		row("retained", "%s topics set in %.3f s; delivered in %.3f s (%s msg/s), complete: %v", num(uint64(rt.Topics)), rt.SetSec, rt.DeliverSec, rate(rt.PerSec), rt.Complete)
	}
	if id := r.Idle; id != nil {
		row("held", "%s connections, %s pings sent, %s answered", num(id.Held), num(id.PingsSent), num(id.PingsRecv))
		if id.RSSAfter > 0 {
			row("broker RSS", "%s before, %s after → %.0f B per connection", size(id.RSSBefore), size(id.RSSAfter), id.BytesPerConn)
		}
		if id.RestSec > 0 {
			row("broker at rest", "%.2f ms CPU/s, %.1f context switches/s with no connection (over %.0f s)", id.RestCPUMsPerSec, id.RestSwitchPerSec, id.RestSec)
		}
		if r.Broker != nil {
			row("broker idle", "%.2f ms CPU/s, %.1f context switches/s with the connections held", id.HeldCPUMsPerSec, id.HeldSwitchPerSec)
		}
	}
	if br := r.Broker; br != nil {
		row("broker CPU", "%.2f s (%.2f cores)", br.CPUSec, br.Cores)
		if br.CPUMicrosPerMsg > 0 {
			row("broker CPU/msg", "%.2f µs per delivered message", br.CPUMicrosPerMsg)
		}
		if br.CPUMicrosPerCon > 0 {
			row("broker CPU/conn", "%.1f µs per connection", br.CPUMicrosPerCon)
		}
		if br.CtxSwitches > 0 {
			row("broker switches", "%s context switches (all threads), %.2f per delivered message", num(br.CtxSwitches), br.CtxSwitchesPerMsg)
		}
		row("broker memory", "RSS %s, peak %s", size(br.RSS), size(br.PeakRSS))
	}
	row("bench CPU", "%.2f s (%.2f cores)", r.Client.CPUSec, r.Client.Cores)
	if len(r.Errors) == 0 {
		row("errors", "none")
	}
	for _, e := range r.Errors {
		row("errors", "%s × %s (first: %s)", num(e.Count), e.Name, e.Sample)
	}
	for _, n := range r.Notes {
		row("note", "%s", n)
	}
	fmt.Fprint(w, b.String())
}

func latRow(l *Latency) string {
	ms := func(us int64) string { return fmt.Sprintf("%.3f", float64(us)/1000) }
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s ms  (n=%s)", ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), num(uint64(l.Count)))
}

// num formats n with thousands separators.
func num(n uint64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func rate(f float64) string { return num(uint64(f + 0.5)) }

func size(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
