// Package router maps MQTT topics to subscribers. It has one job: given a
// topic name, find the subscriptions whose filters match it, and given a
// filter, find the retained messages whose topics it matches. It does no
// I/O, knows nothing of sessions or packets, and imports no other mcutie
// package: filters and topics are validated by the caller (codec) before
// they get here. No input makes it panic; an invalid filter is simply
// stored or matched literally.
//
// # Three indexes, three concurrency contracts
//
//   - Shard[K]: the non-shared subscriptions of the connections of one event
//     loop. Loop-only: not safe for concurrent use; the owning loop is the
//     only caller, so matching takes no lock. A publish matches the local
//     shard and posts the message to the other loops, which match their own.
//   - Shared[K]: the shared subscriptions $share/{group}/{filter} of the
//     whole broker, since one message must reach one member of a group
//     whatever loop it is on. Safe for concurrent use. Match is lock-free: it
//     walks an immutable tree behind an atomic.Pointer; writers are
//     serialized by a mutex and publish a path copy. Members are picked round
//     robin through one atomic counter per group. Empty is one atomic load.
//   - Retained[V]: the retained messages of the whole broker, one value per
//     topic. Safe for concurrent use, behind a sync.RWMutex: readers (Get,
//     Match, Range) run in parallel, writers (Set, Delete) exclusively.
//
// K is the subscriber key (the broker uses its session pointer); V is the
// retained value. Matching allocates nothing when dst has room.
//
// # Matching rules
//
// Levels are separated by '/'. A filter level "+" matches exactly one topic
// level, including an empty one ("a/+/b" matches "a//b") [MQTT-4.7.1-2]. A
// last filter level "#" matches the parent level and any number of levels
// below it ("sport/#" matches "sport", "sport/" and "sport/a/b"; "#" matches
// every topic) [MQTT-4.7.1-1]. Other levels compare byte for byte: case
// matters, spaces are ordinary characters, nothing is normalized
// [MQTT-4.7.3-4]. A leading '/' makes an empty first level ("/a" is "" then
// "a"). A filter whose first level is a wildcard does not match a topic
// starting with '$' ("#" and "+/x" do not match "$SYS/x"; "$SYS/#" does)
// [MQTT-4.7.2-1]. Subscribing to an identical filter again replaces the
// options [MQTT-3.8.4-3]; unsubscribing compares filters exactly
// [MQTT-3.10.4-1].
//
// # Layout
//
// Each index is a tree with one node per level. A node's literal children
// sit in a slice sorted by level while there are at most 16 of them, and in
// a map above that; the level strings live in the parent's slice or map, not
// in the child, and are substrings of one copy of the filter or topic that
// created them. A retained-tree node points to its child set, so a leaf is
// three words. Subscription nodes have separate '+' and '#' edges, so
// matching a topic costs one lookup per level per matching branch. A Match
// walks only what can match: "a/b/+" visits a/b's children, "#" visits
// everything. Unsubscribe and Delete free the nodes they empty.
package router
