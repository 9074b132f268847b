package bridge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/monitor/promtext"
)

// Manager runs the bridges of one broker. Its methods are safe for
// concurrent use.
type Manager struct {
	bridges []*Bridge
}

// Start checks every bridge (TLS files, passwords), removes the
// sessions of bridges not in cfgs (so one Manager runs all of a broker's
// bridges), connects each one's local session and starts them; the remote connections are made in the
// background (a remote that is down is retried with backoff, never an
// error here). On an error no bridge is left running. It must not be
// called on a loop (it waits for the broker).
func Start(ctx context.Context, b *broker.Broker, cfgs []Config, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.Default()
	}
	m := &Manager{}
	if err := removeStale(ctx, b, cfgs, log); err != nil {
		return nil, err
	}
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

// removeStale ends the sessions of bridges no longer in cfgs (persistent,
// with no expiry: they would otherwise queue messages for a remote
// nobody connects to, up to the bounds, for ever).
func removeStale(ctx context.Context, b *broker.Broker, cfgs []Config, log *slog.Logger) error {
	want := map[string]bool{}
	for _, c := range cfgs {
		want[broker.BridgeClientIDPrefix+c.Name] = true
	}
	var stale []string
	q := broker.Query{Match: broker.BridgeClientIDPrefix, Limit: 1000}
	for {
		pg, err := b.Sessions(ctx, q)
		if err != nil {
			return fmt.Errorf("listing the bridges' sessions: %w", err)
		}
		for _, s := range pg.Items {
			if strings.HasPrefix(s.ClientID, broker.BridgeClientIDPrefix) && !want[s.ClientID] {
				stale = append(stale, s.ClientID)
			}
		}
		if pg.Next == "" {
			break
		}
		q.After = pg.Next
	}
	for _, id := range stale {
		if _, err := b.DisconnectClient(ctx, id, true); err != nil {
			return fmt.Errorf("removing the session of a bridge no longer configured (%s): %w", id, err)
		}
		log.Info("bridge: removed the session of a bridge no longer configured, and what it held", "client", id)
	}
	return nil
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

// The bridges' metric families (docs/bridges.md, docs/observability.md).
var (
	mUp            = promtext.Gauge("mcutie_bridge_up", "1 while the bridge is connected to its remote broker, 0 not.")
	mSent          = promtext.Counter("mcutie_bridge_messages_sent_total", "Messages the bridge's remote acknowledged (QoS 0: written to it).")
	mReceived      = promtext.Counter("mcutie_bridge_messages_received_total", "Messages from the bridge's remote published locally.")
	mQueued        = promtext.Gauge("mcutie_bridge_messages_queued", "Messages the bridge's local session holds for the remote: queue and inflight, bounded by --max-queued-messages/--max-queued-bytes.")
	mInflight      = promtext.Gauge("mcutie_bridge_messages_inflight", "Messages sent to the bridge's remote and not yet acknowledged (max_inflight bounds it).")
	mReconnects    = promtext.Counter("mcutie_bridge_reconnects_total", "Remote connections of the bridge that ended and were made again.")
	mConnectErrors = promtext.Counter("mcutie_bridge_connect_errors_total", "Failed connection attempts of the bridge (retried with backoff).")
	mDropped       = promtext.Counter("mcutie_bridge_messages_dropped_total", "Messages the bridge dropped, by reason: echo (a 3.1.1 remote sent the bridge's own message back), remote_refused (v5 PUBACK >= 0x80), local_refused (the local broker refused an inbound message).")
)

// WriteMetrics writes the bridges' metrics in Prometheus text format.
// Safe for concurrent use.
func (m *Manager) WriteMetrics(w io.Writer) {
	if m == nil || len(m.bridges) == 0 {
		return
	}
	sts := m.Status()
	each := func(f promtext.Family, v func(Status) uint64) {
		f.Header(w)
		for _, st := range sts {
			f.Sample(w, promtext.Labels("bridge", st.Name), v(st))
		}
	}
	each(mUp, func(st Status) uint64 {
		if st.Up {
			return 1
		}
		return 0
	})
	each(mSent, func(st Status) uint64 { return st.Sent })
	each(mReceived, func(st Status) uint64 { return st.Received })
	each(mQueued, func(st Status) uint64 { return uint64(max(st.Queued, 0)) })
	each(mInflight, func(st Status) uint64 { return uint64(max(st.Inflight, 0)) })
	each(mReconnects, func(st Status) uint64 { return st.Reconnects })
	each(mConnectErrors, func(st Status) uint64 { return st.ConnectErrors })
	mDropped.Header(w)
	for _, st := range sts {
		mDropped.Sample(w, promtext.Labels("bridge", st.Name, "reason", "echo"), st.Echoes)
		mDropped.Sample(w, promtext.Labels("bridge", st.Name, "reason", "remote_refused"), st.DroppedRemote)
		mDropped.Sample(w, promtext.Labels("bridge", st.Name, "reason", "local_refused"), st.DroppedLocal)
	}
}
