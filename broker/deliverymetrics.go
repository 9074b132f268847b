package broker

import (
	"io"

	"github.com/mcutie/mcutie/monitor/promtext"
)

// The metric families of the delivery features (docs/delivery.md); each
// has a row in docs/observability.md.
var (
	mP2PMessages     = promtext.Counter("mcutie_p2p_messages_total", "PUBLISHes to $p2p/{clientid}/{topic} (--p2p), by result: delivered, no_session, invalid, denied.")
	mDelayedMessages = promtext.Gauge("mcutie_delayed_messages", "Delayed messages waiting for their publication time (--max-delayed-messages).")
	mAutoSubs        = promtext.Counter("mcutie_auto_subscriptions_total", "Subscriptions the auto-subscribe rules made at CONNECT (--auto-subscribe), by result: added, refused (ACL, limit or hook), skipped (the client id or user name cannot fill the filter).")
	mDelayedTotal    = promtext.Counter("mcutie_delayed_messages_total", "PUBLISHes to $delayed/{seconds}/{topic} (--delayed-publish) and what became of them, by result: scheduled, published, canceled, quota_exceeded, delay_too_long, invalid.")
)

// writeDeliveryMetrics writes the metrics of the delivery features.
// Safe for concurrent use.
func (b *Broker) writeDeliveryMetrics(w io.Writer) {
	mP2PMessages.Header(w)
	for r := range numP2PResults {
		mP2PMessages.Sample(w, promtext.Labels("result", p2pResultLabels[r]), b.p2p[r].Load())
	}
	mAutoSubs.Header(w)
	for r := range numAutoSubResults {
		mAutoSubs.Sample(w, promtext.Labels("result", autoSubResultLabels[r]), b.autoSub[r].Load())
	}
	mDelayedMessages.Write(w, uint64(max(b.delayed.count.Load(), 0)))
	mDelayedTotal.Header(w)
	for r := range numDelayedResults {
		mDelayedTotal.Sample(w, promtext.Labels("result", delayedResultLabels[r]), b.delayed.ctr[r].Load())
	}
}
