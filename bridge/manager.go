package bridge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mcutie/mcutie/broker"
)

// Manager runs the bridges of one broker. Its methods are safe for
// concurrent use.
type Manager struct {
	bridges []*Bridge
}

// Start checks every bridge (TLS files, passwords), connects each one's
// local session and starts them; the remote connections are made in the
// background (a remote that is down is retried with backoff, never an
// error here). On an error no bridge is left running. It must not be
// called on a loop (it waits for the broker).
func Start(ctx context.Context, b *broker.Broker, cfgs []Config, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.Default()
	}
	m := &Manager{}
	for _, c := range cfgs {
		br, err := newBridge(b, c, log)
		if err != nil {
			m.Stop()
			return nil, fmt.Errorf("bridge %s: %w", c.Name, err)
		}
		if err := br.start(ctx); err != nil {
			m.Stop()
			return nil, fmt.Errorf("bridge %s: %w", c.Name, err)
		}
		m.bridges = append(m.bridges, br)
	}
	return m, nil
}

// Stop stops every bridge: remote connections closed, local sessions
// detached (each keeps, durably with a store, what its remote has not
// acknowledged). Calling it on a nil Manager does nothing.
func (m *Manager) Stop() {
	if m == nil {
		return
	}
	for _, br := range m.bridges {
		br.stop()
	}
	m.bridges = nil
}

// Bridges are the running bridges, in the file's order.
func (m *Manager) Bridges() []*Bridge { return m.bridges }

// Status reports every bridge.
func (m *Manager) Status() []Status {
	var out []Status
	for _, br := range m.bridges {
		out = append(out, br.Status())
	}
	return out
}

// WriteMetrics writes the bridges' metrics in Prometheus text format.
func (m *Manager) WriteMetrics(w io.Writer) {
	if m == nil {
		return
	}
	for _, br := range m.bridges {
		st := br.Status()
		l := `{bridge=` + strconv.Quote(st.Name) + `}`
		up := uint64(0)
		if st.Up {
			up = 1
		}
		metrics.WriteGaugeUint64(w, "mcutie_bridge_up"+l, up)
		metrics.WriteCounterUint64(w, "mcutie_bridge_messages_sent_total"+l, st.Sent)
		metrics.WriteCounterUint64(w, "mcutie_bridge_messages_received_total"+l, st.Received)
		metrics.WriteGaugeUint64(w, "mcutie_bridge_messages_queued"+l, uint64(max(st.Queued, 0)))
		metrics.WriteGaugeUint64(w, "mcutie_bridge_messages_inflight"+l, uint64(max(st.Inflight, 0)))
		metrics.WriteCounterUint64(w, "mcutie_bridge_reconnects_total"+l, st.Reconnects)
		metrics.WriteCounterUint64(w, "mcutie_bridge_connect_errors_total"+l, st.ConnectErrors)
		lr := `{bridge=` + strconv.Quote(st.Name) + `,reason=`
		metrics.WriteCounterUint64(w, "mcutie_bridge_messages_dropped_total"+lr+`"echo"}`, st.Echoes)
		metrics.WriteCounterUint64(w, "mcutie_bridge_messages_dropped_total"+lr+`"remote_refused"}`, st.DroppedRemote)
		metrics.WriteCounterUint64(w, "mcutie_bridge_messages_dropped_total"+lr+`"local_refused"}`, st.DroppedLocal)
	}
}
