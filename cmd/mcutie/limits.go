package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/store"
)

// maxLoops bounds --loops: each event loop costs about 870 KB before it
// holds a connection, and more loops than cores only add wake-ups.
const maxLoops = 1024

// checkLimits refuses flag values the broker cannot honour, before anything
// starts: a usage error names the flag and the allowed range.
func checkLimits(cfg *config) error {
	// No packet can be framed above codec.MaxPacketSize, and a v5 client
	// is told the limit in four bytes: a larger value would be advertised
	// wrapped, and deliveries near it could not be encoded.
	if cfg.opts.MaxPacketSize < 2 || cfg.opts.MaxPacketSize > codec.MaxPacketSize {
		return fmt.Errorf("--max-packet-size %d: want 2 to %d bytes (the protocol's largest packet)", cfg.opts.MaxPacketSize, codec.MaxPacketSize)
	}
	if cfg.opts.Loops < 0 || cfg.opts.Loops > maxLoops {
		return fmt.Errorf("--loops %d: want 0 (one per CPU) to %d", cfg.opts.Loops, maxLoops)
	}
	if cfg.opts.SysPrefix == "" || cfg.opts.SysPrefix[0] != '$' || strings.ContainsAny(cfg.opts.SysPrefix, "+#") || strings.HasSuffix(cfg.opts.SysPrefix, "/") {
		return fmt.Errorf("--sys-prefix %q: want a topic that starts with '$' (so no '#' filter matches it), without wildcards or a trailing '/'", cfg.opts.SysPrefix)
	}
	// Zero would read as "no limit" to some and "nothing" to others:
	// refused, so a bound is always what the flag says. A negative value
	// would be read as the default by the broker: refused too.
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"max-queued-messages", int64(cfg.opts.MaxQueued)},
		{"max-queued-bytes", int64(cfg.opts.MaxQueuedBytes)},
		{"max-queued-bytes-total", cfg.opts.MaxQueuedBytesTotal},
		{"max-subscriptions", int64(cfg.opts.MaxSubscriptions)},
		{"max-wildcard-levels", int64(cfg.opts.MaxWildcardLevels)},
		{"max-retained-owed", int64(cfg.opts.MaxRetainedOwed)},
		{"max-user-properties", int64(cfg.opts.MaxUserProperties)},
		{"max-retained-messages", int64(cfg.opts.MaxRetainedMessages)},
		{"max-retained-bytes", cfg.opts.MaxRetainedBytes},
		{"max-sessions", int64(cfg.opts.MaxSessions)},
		{"max-subscription-bytes", int64(cfg.opts.MaxSubscriptionBytes)},
		{"max-topic-levels", int64(cfg.opts.MaxTopicLevels)},
		{"max-outbound-bytes", int64(cfg.opts.MaxOutboundBytes)},
		{"inbox-size", int64(cfg.opts.InboxSize)},
		{"commit-backlog", int64(cfg.opts.CommitBacklog)},
		{"acl-cache-size", int64(cfg.opts.ACLCacheSize)},
		{"max-pending-auth-per-ip", int64(cfg.opts.MaxPendingAuthPerIP)},
		{"ban-max-tracked", int64(cfg.opts.BanMaxTracked)},
		{"auth-workers", int64(cfg.authWorkers)},
		{"auth-queue", int64(cfg.authQueue)},
	} {
		if f.v <= 0 {
			return fmt.Errorf("--%s %d: want at least 1", f.name, f.v)
		}
	}
	// 0 turns these off; below it means nothing.
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"max-connections", float64(cfg.opts.MaxConnections)},
		{"max-connections-per-ip", float64(cfg.opts.MaxConnectionsPerIP)},
		{"connection-rate-per-ip", cfg.opts.ConnectRatePerIP},
		{"connection-burst-per-ip", float64(cfg.opts.ConnectBurstPerIP)},
		{"publish-rate", cfg.opts.PublishRate},
		{"publish-burst", float64(cfg.opts.PublishBurst)},
		{"publish-byte-burst", float64(cfg.opts.PublishByteBurst)},
		{"publish-byte-rate", cfg.opts.PublishByteRate},
		{"ban-threshold", float64(cfg.opts.BanThreshold)},
		{"log-connections-rate", cfg.logging.connRate},
		{"sys-interval", float64(cfg.sysInterval)},
		{"packet-timeout", float64(cfg.packetTimeout)},
		{"commit-max-delay", float64(cfg.commitDelay)},
	} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("--%s %v: want 0 or more", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"connect-timeout", cfg.opts.ConnectTimeout},
		{"auth-timeout", cfg.opts.AuthTimeout},
		{"ban-window", cfg.opts.BanWindow},
		{"ban-duration", cfg.opts.BanDuration},
	} {
		if f.v <= 0 {
			return fmt.Errorf("--%s %v: want a positive duration", f.name, f.v)
		}
	}
	// The protocol's fields: a larger value cannot be sent, and was once
	// cut to the field silently.
	for _, f := range []struct {
		name     string
		v        uint
		min, max uint
		why      string
	}{
		{"max-keepalive", cfg.maxKeepAlive, 0, 65535, "the CONNECT's two-byte Keep Alive"},
		{"min-keepalive", cfg.minKeepAlive, 0, 65535, "the CONNECT's two-byte Keep Alive"},
		{"max-inflight", cfg.maxInflight, 1, 65535, "v5 Receive Maximum, two bytes"},
		{"topic-alias-maximum", cfg.topicAliasMax, 0, 65535, "v5 Topic Alias Maximum, two bytes"},
		{"outbound-topic-aliases", cfg.outboundAliases, 0, 65535, "v5 Topic Alias, two bytes"},
		{"max-session-expiry", cfg.maxSessionExpiry, 0, store.ExpiryNever, "v5 Session Expiry Interval, four bytes"},
	} {
		if f.v < f.min || f.v > f.max {
			return fmt.Errorf("--%s %d: want %d to %d (%s)", f.name, f.v, f.min, f.max, f.why)
		}
	}
	if cfg.opts.MaxTopicLength < 1 || cfg.opts.MaxTopicLength > 65535 {
		return fmt.Errorf("--max-topic-length %d: want 1 to 65535 (a topic is a two-byte-length string)", cfg.opts.MaxTopicLength)
	}
	// [MQTT-3.1.3-5] A server must accept client ids of 1 to 23 bytes.
	if cfg.opts.MaxClientIDLength < 23 || cfg.opts.MaxClientIDLength > 65535 {
		return fmt.Errorf("--max-client-id-length %d: want 23 (MQTT-3.1.3-5: every id of up to 23 bytes must be accepted) to 65535", cfg.opts.MaxClientIDLength)
	}
	if cfg.maxKeepAlive > 0 && cfg.minKeepAlive > cfg.maxKeepAlive {
		return fmt.Errorf("--min-keepalive %d: want at most --max-keepalive %d", cfg.minKeepAlive, cfg.maxKeepAlive)
	}
	return nil
}
