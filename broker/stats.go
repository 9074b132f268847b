package broker

// loopCounters are plain per-loop counters: written only by their loop
// (no atomics on the hot path) and read racily for metrics, where a stale
// value is harmless. They are exported through Stats.
type loopCounters struct {
	connectionsOpened, connectionsClosed uint64
	connects, connectsRefused            uint64
	takeovers                            uint64
	connectTimeouts, keepAliveTimeouts   uint64
	protocolErrors                       uint64
	packetsIn                            [16]uint64
	publishIn, publishOut                [3]uint64
	bytesIn, bytesOut                    uint64
	queued                               uint64
	willsPublished, sessionsExpired      uint64
	droppedNoSubscribers                 uint64
	droppedSlowConsumer                  uint64
	droppedQueueFull                     uint64
	droppedExpired                       uint64
	droppedTooLarge                      uint64
	droppedInboxFull                     uint64
	slowConsumerStalls                   uint64
}

// Stats is a snapshot of broker counters.
type Stats struct {
	loopCounters
}
