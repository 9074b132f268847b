package main

import (
	"fmt"

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
	if cfg.maxPacketSize < 2 || cfg.maxPacketSize > codec.MaxPacketSize {
		return fmt.Errorf("--max-packet-size %d: want 2 to %d bytes (the protocol's largest packet)", cfg.maxPacketSize, codec.MaxPacketSize)
	}
	if cfg.loops < 0 || cfg.loops > maxLoops {
		return fmt.Errorf("--loops %d: want 0 (one per CPU) to %d", cfg.loops, maxLoops)
	}
	// Zero would read as "no limit" to some and "nothing" to others:
	// refused, so a bound is always what the flag says.
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"max-queued-messages", int64(cfg.maxQueued)},
		{"max-queued-bytes", int64(cfg.maxQueuedBytes)},
		{"max-queued-bytes-total", cfg.maxQueuedBytesTotal},
		{"max-subscriptions", int64(cfg.maxSubscriptions)},
		{"max-wildcard-levels", int64(cfg.maxWildcardLvls)},
		{"max-retained-owed", int64(cfg.maxRetainedOwed)},
		{"max-user-properties", int64(cfg.maxUserProps)},
		{"max-retained-messages", int64(cfg.maxRetainedMsgs)},
		{"max-retained-bytes", cfg.maxRetainedBytes},
		{"max-sessions", int64(cfg.maxSessions)},
		{"max-subscription-bytes", int64(cfg.maxSubBytes)},
	} {
		if f.v <= 0 {
			return fmt.Errorf("--%s %d: want at least 1", f.name, f.v)
		}
	}
	return nil
}
