package broker

import (
	"log/slog"

	"github.com/mcutie/mcutie/codec"
)

// Reasons as enumerations: why a message was dropped, why a connection was
// closed, why a filter was refused. Each value is one line in a table that
// gives its metric label (and, for a close, its log line and v5 reason
// code), and counts in one array of loopCounters, so a new limit or drop
// reason is one constant and one table entry.

// dropReason is why a message was not delivered to a subscriber (or not
// retained): mcutie_messages_dropped_total{reason}.
type dropReason uint8

const (
	dropNoSubscribers    dropReason = iota // no subscriber matched
	dropSlowConsumer                       // QoS 0 to a connection over MaxOutboundBytes
	dropQueueFull                          // MaxQueued
	dropQueueBytes                         // MaxQueuedBytes
	dropBrokerQueueBytes                   // MaxQueuedBytesTotal
	dropExpired                            // Message Expiry passed [MQTT-3.3.2-5]
	dropTooLarge                           // over the client's Maximum Packet Size or the protocol's
	dropInboxFull                          // another loop's inbox was full
	dropTopicLimit                         // MaxTopicLength / MaxTopicLevels
	dropUserProperties                     // MaxUserProperties
	dropRetainedFull                       // MaxRetainedMessages / MaxRetainedBytes: not retained
	dropHook                               // a Publish hook dropped it (hooks.go)
	dropClusterQueueFull                   // Peers.Forward could not queue it for the nodes it matched
	numDropReasons
)

var dropLabels = [numDropReasons]string{
	dropNoSubscribers:    "no_subscribers",
	dropSlowConsumer:     "slow_consumer",
	dropQueueFull:        "queue_full",
	dropQueueBytes:       "queue_bytes_full",
	dropBrokerQueueBytes: "broker_queue_bytes_full",
	dropExpired:          "expired",
	dropTooLarge:         "too_large",
	dropInboxFull:        "inbox_full",
	dropTopicLimit:       "topic_limit",
	dropUserProperties:   "user_properties",
	dropRetainedFull:     "retained_full",
	dropHook:             "hook",
	dropClusterQueueFull: "cluster_queue_full",
}

// closeReason is why the broker closes a connection after its CONNECT (or
// before one: the connect timeout): mcutie_connections_rejected_total{reason},
// one throttled log line naming the client, and the v5 DISCONNECT reason
// code sent first (none for a connection that is not connected yet or
// whose reason has no code).
type closeReason uint8

const (
	closeProtocolError   closeReason = iota // a protocol violation (its own reason code)
	closeConnectTimeout                     // no CONNECT within ConnectTimeout
	closeKeepAlive                          // silent for 1.5 × keep-alive [MQTT-3.1.2-22]
	closeSlowReader                         // sends without reading what it is answered
	closeRetainedOwed                       // subscribes again while owed more than MaxRetainedOwed
	closePublishRate                        // PublishRate
	closePublishByteRate                    // PublishByteRate
	closeStoreRefused                       // an acknowledgement's state could not be stored
	numCloseReasons
)

type closeInfo struct {
	label string           // metric label
	log   string           // the log line
	code  codec.ReasonCode // v5 DISCONNECT; 0: none
}

var closeReasons = [numCloseReasons]closeInfo{
	closeProtocolError:   {"protocol_error", "closing connection: protocol violation", codec.UnspecifiedError},
	closeConnectTimeout:  {"connect_timeout", "closing connection: no CONNECT within --connect-timeout", 0},
	closeKeepAlive:       {"keepalive_timeout", "closing connection: keep alive timeout", codec.KeepAliveTimeout},
	closeSlowReader:      {"slow_reader", "closing connection: the client does not read what it is sent", 0},
	closeRetainedOwed:    {"retained_owed", "closing connection: the client subscribes again without reading the retained messages it is owed", 0},
	closePublishRate:     {"publish_rate", "closing connection: publish rate limit", codec.MessageRateTooHigh},
	closePublishByteRate: {"publish_byte_rate", "closing connection: publish byte rate limit", codec.QuotaExceeded},
	closeStoreRefused:    {"store_refused", "closing connection: acknowledgement refused, its state was not stored", codec.UnspecifiedError},
}

// closeFor closes c for r: counted, logged (throttled) with attrs, and a v5
// client told r's reason code (or code, when not 0) first. Loop-only.
func (c *Client) closeFor(r closeReason, code codec.ReasonCode, reason string, attrs ...slog.Attr) {
	info := &closeReasons[r]
	c.l.counters.closed[r]++
	c.closedFor = uint8(r) + 1
	c.logClose(info.log, attrs...)
	if code == 0 {
		code = info.code
	}
	if code == 0 || c.state != stateConnected {
		c.close()
		return
	}
	if reason == "" {
		reason = info.log
	}
	c.disconnect(code, reason)
}

// subRefusal is why one filter of a SUBSCRIBE was refused by a limit:
// mcutie_subscriptions_refused_total{reason}.
type subRefusal uint8

const (
	subRefusedQuota          subRefusal = iota // MaxSubscriptions
	subRefusedTopicLimit                       // MaxTopicLength / MaxTopicLevels
	subRefusedWildcardLevels                   // MaxWildcardLevels
	subRefusedBytes                            // MaxSubscriptionBytes
	subRefusedHook                             // a Subscribe hook refused it
	numSubRefusals
)

var subRefusalLabels = [numSubRefusals]string{
	subRefusedQuota:          "max_subscriptions",
	subRefusedTopicLimit:     "topic_limit",
	subRefusedWildcardLevels: "wildcard_levels",
	subRefusedBytes:          "subscription_bytes",
	subRefusedHook:           "hook",
}
