//go:build linux

package main

// report is the subset of bench's --json output (bench/report.go, type
// Report) that the comparison reads. Field names are the JSON keys there.
type report struct {
	Scenario    string `json:"scenario"`
	Description string `json:"description"`
	Params      struct {
		QoS         int     `json:"qos"`
		Payload     int     `json:"payload_bytes"`
		Publishers  int     `json:"publishers"`
		Subscribers int     `json:"subscribers"`
		Conns       int     `json:"conns"`
		Rate        float64 `json:"rate_per_publisher"`
		SourceAddrs int     `json:"source_addrs"`
	} `json:"params"`
	WindowSec   float64 `json:"window_s"`
	Connections struct {
		Attempted int      `json:"attempted"`
		OK        uint64   `json:"ok"`
		Failed    uint64   `json:"failed"`
		Dropped   uint64   `json:"dropped"`
		PerSec    float64  `json:"per_sec"`
		Connack   *latency `json:"connack_latency_us"`
	} `json:"connections"`
	Messages *struct {
		Sent           uint64  `json:"sent"`
		Received       uint64  `json:"received"`
		SentPerSec     float64 `json:"sent_per_sec"`
		ReceivedPerSec float64 `json:"received_per_sec"`
		ReceivedTotal  uint64  `json:"received_total"`
		Expected       uint64  `json:"expected"`
		Lost           uint64  `json:"lost"`
		Duplicated     uint64  `json:"duplicated"`
		OutOfOrder     uint64  `json:"out_of_order"`
	} `json:"messages"`
	Latency  *latency `json:"latency_us"`
	Retained *struct {
		Topics     int     `json:"topics"`
		DeliverSec float64 `json:"deliver_s"`
		PerSec     float64 `json:"per_sec"`
		Complete   bool    `json:"complete"`
	} `json:"retained"`
	Idle *struct {
		Held         uint64  `json:"held"`
		RSSBefore    uint64  `json:"broker_rss_before_bytes"`
		RSSAfter     uint64  `json:"broker_rss_after_bytes"`
		BytesPerConn float64 `json:"broker_bytes_per_conn"`
		// --rest: the broker with no client, per second.
		RestSec          float64 `json:"rest_s"`
		RestCPUMsPerSec  float64 `json:"broker_rest_cpu_ms_per_s"`
		RestSwitchPerSec float64 `json:"broker_rest_switches_per_s"`
	} `json:"idle"`
	Broker *struct {
		CPUSec            float64 `json:"cpu_s"`
		Cores             float64 `json:"cores"`
		CPUMicrosPerMsg   float64 `json:"cpu_us_per_msg"`
		CPUMicrosPerCon   float64 `json:"cpu_us_per_conn"`
		RSS               uint64  `json:"rss_bytes"`
		PeakRSS           uint64  `json:"peak_rss_bytes"`
		CtxSwitchesPerMsg float64 `json:"ctx_switches_per_msg"`
	} `json:"broker"`
	Client struct {
		CPUSec float64 `json:"cpu_s"`
		Cores  float64 `json:"cores"`
	} `json:"client"`
	Errors []struct {
		Name   string `json:"reason"`
		Count  uint64 `json:"count"`
		Sample string `json:"sample"`
	} `json:"errors"`
	Notes []string `json:"notes"`
}

// latency holds percentiles in microseconds.
type latency struct {
	Count int64   `json:"count"`
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p99_9"`
	Max   int64   `json:"max"`
	Mean  float64 `json:"mean"`
}

// delivered is the headline rate of r: delivered messages per second, or
// for retained the messages per second of the delivery, or for connect the
// connections per second.
func (r *report) delivered() float64 {
	switch {
	case r == nil:
		return 0
	case r.Retained != nil:
		return r.Retained.PerSec
	case r.Messages != nil:
		return r.Messages.ReceivedPerSec
	}
	return r.Connections.PerSec
}

// cpuPer is the broker's CPU µs per delivered message (per connection for
// connect), 0 when not measured.
func (r *report) cpuPer() float64 {
	if r == nil || r.Broker == nil {
		return 0
	}
	if r.Broker.CPUMicrosPerMsg > 0 {
		return r.Broker.CPUMicrosPerMsg
	}
	return r.Broker.CPUMicrosPerCon
}

// p99 is the message latency p99 (CONNACK latency for connect), µs.
func (r *report) p99() int64 {
	switch {
	case r == nil:
		return 0
	case r.Latency != nil:
		return r.Latency.P99
	case r.Connections.Connack != nil:
		return r.Connections.Connack.P99
	}
	return 0
}
