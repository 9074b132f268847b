package router

import "bytes"

// SubOptions are a subscription's MQTT options, stored as given; the router
// interprets none of them.
type SubOptions struct {
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	ID                uint32 // v5 subscription identifier, 0 = none
}

// Entry is one subscription as Match reports it: the subscriber key and the
// options of the filter that matched.
type Entry[K comparable] struct {
	Key  K
	Opts SubOptions
}

// nextLevel splits b at its first '/': lvl is the first level, rest what
// follows the separator, and last reports that b had no separator.
func nextLevel(b []byte) (lvl, rest []byte, last bool) {
	if i := bytes.IndexByte(b, '/'); i >= 0 {
		return b[:i], b[i+1:], false
	}
	return b, nil, true
}

// A filter level is a wildcard only when it is the wildcard character alone
// [MQTT-4.7.1-1] [MQTT-4.7.1-2]: "a+" or "#b" are literal levels.
func isPlus(lvl []byte) bool { return len(lvl) == 1 && lvl[0] == '+' }
func isHash(lvl []byte) bool { return len(lvl) == 1 && lvl[0] == '#' }

// dollar reports whether a topic starts with '$' ("$SYS/..."); such topics
// are not matched by filters whose first level is a wildcard [MQTT-4.7.2-1].
func dollar(topic []byte) bool { return len(topic) > 0 && topic[0] == '$' }
