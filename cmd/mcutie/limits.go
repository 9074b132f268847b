package main

import (
	"fmt"
	"strings"

	"github.com/mcutie/mcutie/codec"
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
	// refused, so a bound is always what the flag says.
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
	} {
		if f.v <= 0 {
			return fmt.Errorf("--%s %d: want at least 1", f.name, f.v)
		}
	}
	return nil
}
