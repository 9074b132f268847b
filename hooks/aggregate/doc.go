// Package aggregate is a plugin that reduces the numbers published on a
// topic filter over a window and publishes the result on another topic.
//
// Each Rule names a Filter, a window — Count values, a Window of time, or
// both (whichever ends first) — and an Output topic. A payload is a number
// ("21.5", which is also a JSON number) or, with Field, a JSON object
// holding one at a dotted path ("data.temp"); other payloads are skipped
// and counted. When a window ends with at least one value, the plugin
// publishes on Output, with the rule's QoS and retain flag,
//
//	{"count":10,"min":19.5,"max":22,"avg":20.7,"sum":207,"start":"…","end":"…"}
//
// (Functions chooses among min, max, avg, sum and count; start and end
// are the first and last value's arrival, RFC 3339). The messages
// themselves are passed on unchanged.
//
// # Publishing from a hook
//
// The Publish hook runs on an event loop; the result is published through
// a Publisher (broker.Broker has the method: the binary calls
// SetPublisher with it after broker.New). The hook never publishes itself:
// it offers the result to a bounded queue (Config.Queue) without waiting,
// and one goroutine publishes from it; a full queue, or no Publisher yet,
// drops the result (counted). A published result comes back through the
// Publish hooks like any server-side message: New refuses a rule whose
// Output matches any rule's Filter, so a result is never aggregated again
// (no loop), and messages from the server on an Output topic are ignored.
//
// Metrics (WriteMetrics): mcutie_aggregate_values_total{output=…},
// mcutie_aggregate_skipped_total{output=…} (not a number),
// mcutie_aggregate_results_total{output=…,result=published|dropped|error}.
package aggregate
