package bridge

import (
	"strings"

	"github.com/mcutie/mcutie/codec"
)

// Topic mapping, Mosquitto's semantics (mosquitto.conf(5), "topic"):
// out: subscribe locally to local-prefix+pattern, publish remotely with
// the local prefix replaced by the remote prefix; in: the other way
// round. An empty pattern maps the one topic local-prefix to the one
// topic remote-prefix.

// localFilter is what an out mapping subscribes to locally.
func (t *Topic) localFilter() string { return t.LocalPrefix + t.Pattern }

// remoteFilter is what an in mapping subscribes to on the remote.
func (t *Topic) remoteFilter() string { return t.RemotePrefix + t.Pattern }

func (t *Topic) out() bool { return t.Direction == "out" || t.Direction == "both" }
func (t *Topic) in() bool  { return t.Direction == "in" || t.Direction == "both" }

// toRemote maps a local topic that matched localFilter.
func (t *Topic) toRemote(local string) string {
	if t.Pattern == "" {
		return t.RemotePrefix
	}
	return t.RemotePrefix + strings.TrimPrefix(local, t.LocalPrefix)
}

// toLocal maps a remote topic that matched remoteFilter.
func (t *Topic) toLocal(remote string) string {
	if t.Pattern == "" {
		return t.LocalPrefix
	}
	return t.LocalPrefix + strings.TrimPrefix(remote, t.RemotePrefix)
}

// inbound returns the first in mapping whose remote filter matches the
// remote topic, or nil.
func inbound(topics []Topic, remote string) *Topic {
	for i := range topics {
		if t := &topics[i]; t.in() && codec.MatchTopic(t.remoteFilter(), []byte(remote)) {
			return t
		}
	}
	return nil
}
